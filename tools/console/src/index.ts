export { startConsole, takeSnapshot, faultDraft, faultKey, splitAddress, POLL_MS_DEFAULT, type ConsoleOptions, type RunningConsole } from './server.js';
export * from './model.js';
export { PAGE_HTML } from './page.js';
export { reportHtml, likelyCause, namedEntities, regionsOf, REPORT_TIMELINE_MAX, type RunReport, type ReportEntry, type ReportVerdict, type ReportMap, type ReportFailure } from './report.js';
export { MAP_JS } from './map-draw.js';
