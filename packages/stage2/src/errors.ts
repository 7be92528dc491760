/** Every error the stage-2 domain returns: one of two families, each with its own table. */
import type { ErrnoError } from './pkvm/errno.js';
import type { RmiError } from './rmi/status.js';

export type DomainError = ErrnoError | RmiError;
