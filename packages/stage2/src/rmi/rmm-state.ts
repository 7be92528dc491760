/** The RMM's objects: realms (by RD address), RECs and RTTs. Filled in by the rmi/ commands. */
export class RmmState {}
