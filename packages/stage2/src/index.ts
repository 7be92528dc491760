export * from './types.js';
export * from './result.js';
export * from './errors.js';
export * from './pkvm/errno.js';
export * from './rmi/status.js';
export * from './stage2.js';
