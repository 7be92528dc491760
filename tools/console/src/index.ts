export { startConsole, takeSnapshot, faultDraft, faultKey, splitAddress, POLL_MS_DEFAULT, type ConsoleOptions, type RunningConsole } from './server.js';
export * from './model.js';
export { PAGE_HTML } from './page.js';
