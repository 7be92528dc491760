/** @hypmesh/rm: the Gunyah Resource Manager domain (DESIGN.md §3). Pure, no I/O. */
export * from './notify-queue.js';
export * from './vm-status.js';
