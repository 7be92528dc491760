/**
 * The RM message-ID catalogue, gunyah-rm.md §2, as one table with the spec's names.
 * 0x51… memory, 0x56… VM; notifications set bit 20 (§2). `rm` says what open RM 12/2023 does with
 * a request ('handled'; 'unimplemented' = known but answered UNIMPLEMENTED; 'absent' = unknown to
 * it, also UNIMPLEMENTED, §8.3); `linux` says who issues it (L23/L24 upstream, L24 only, QCV vendor).
 */

export type MessageKind = 'request' | 'notification';
export type RmSupport = 'handled' | 'unimplemented' | 'absent';
export type LinuxIssuer = 'L23/L24' | 'L24' | 'QCV' | 'none';

export interface MessageIdRow {
  readonly id: number;
  readonly kind: MessageKind;
  readonly rm: RmSupport;
  readonly linux: LinuxIssuer;
  /** Linux's name where it differs (§2.1 "Linux VM_ALLOC_VMID"). */
  readonly linuxName?: string;
}

const req = (id: number, rm: RmSupport, linux: LinuxIssuer, linuxName?: string): MessageIdRow =>
  linuxName === undefined ? { id, kind: 'request', rm, linux } : { id, kind: 'request', rm, linux, linuxName };
const notif = (id: number): MessageIdRow => ({ id, kind: 'notification', rm: 'handled', linux: 'none' });

/** §2.1 requests then §2.2 notifications, in the spec's order; ranges expanded one row per ID. */
export const MESSAGE_IDS = {
  // §2.1 requests
  GET_IDENT: req(0x0000_0001, 'absent', 'QCV'),
  GET_FEATURES: req(0x0000_0002, 'absent', 'QCV'),
  MEM_DONATE: req(0x5100_0010, 'handled', 'QCV'),
  MEM_ACCEPT: req(0x5100_0011, 'handled', 'QCV'),
  MEM_LEND: req(0x5100_0012, 'handled', 'L23/L24'),
  MEM_SHARE: req(0x5100_0013, 'handled', 'L23/L24'),
  MEM_RELEASE: req(0x5100_0014, 'handled', 'QCV'),
  MEM_RECLAIM: req(0x5100_0015, 'handled', 'L23/L24'),
  MEM_NOTIFY: req(0x5100_0017, 'handled', 'QCV'),
  MEM_APPEND: req(0x5100_0018, 'handled', 'L23/L24'),
  MEM_QCOM_LOOKUP_SGL: req(0x5100_001a, 'handled', 'QCV'),
  FW_MILESTONE: req(0x5100_0020, 'handled', 'none'),
  FW_SET_VM_FIRMWARE: req(0x5100_0021, 'handled', 'none'),
  VM_ALLOCATE: req(0x5600_0001, 'handled', 'L23/L24', 'VM_ALLOC_VMID'),
  VM_DEALLOCATE: req(0x5600_0002, 'handled', 'L23/L24', 'VM_DEALLOC_VMID'),
  VM_START: req(0x5600_0004, 'handled', 'L23/L24'),
  VM_STOP: req(0x5600_0005, 'handled', 'L23/L24'),
  VM_RESET: req(0x5600_0006, 'handled', 'L23/L24'),
  VM_CONFIG_IMAGE: req(0x5600_0009, 'handled', 'L23/L24'),
  VM_AUTH_IMAGE: req(0x5600_000a, 'handled', 'QCV'),
  VM_INIT: req(0x5600_000b, 'handled', 'L23/L24'),
  VM_GET_ID: req(0x5600_0010, 'handled', 'QCV'),
  VM_LOOKUP_URI: req(0x5600_0011, 'handled', 'QCV'),
  VM_LOOKUP_GUID: req(0x5600_0012, 'handled', 'QCV'),
  VM_LOOKUP_NAME: req(0x5600_0013, 'handled', 'QCV'),
  VM_GET_OWNER: req(0x5600_0015, 'handled', 'none'),
  VM_GET_STATE: req(0x5600_0017, 'handled', 'QCV'),
  VM_GET_CRASH_MSG: req(0x5600_0019, 'handled', 'none'),
  VM_GET_HYP_RESOURCES: req(0x5600_0020, 'handled', 'L23/L24'),
  VM_GET_HYP_CAPIDS: req(0x5600_0021, 'unimplemented', 'QCV'),
  VM_GET_HYP_IRQS: req(0x5600_0022, 'unimplemented', 'QCV'),
  VM_GET_VMID: req(0x5600_0024, 'handled', 'L23/L24'),
  VM_GET_PEERS: req(0x5600_0025, 'handled', 'none'),
  VM_SET_TIME_BASE: req(0x5600_0030, 'handled', 'QCV'),
  VM_SET_CONTEXT: req(0x5600_0031, 'unimplemented', 'L24', 'VM_SET_BOOT_CONTEXT'),
  VM_SET_FIRMWARE_MEM: req(0x5600_0032, 'handled', 'none'),
  VM_SET_DEMAND_PAGING: req(0x5600_0033, 'absent', 'L24'),
  VM_SET_ADDRESS_LAYOUT: req(0x5600_0034, 'absent', 'L24'),
  VM_MINIDUMP_GET_INFO: req(0x5600_0040, 'absent', 'QCV'),
  VM_MINIDUMP_REGISTER: req(0x5600_0041, 'absent', 'QCV'),
  VM_MINIDUMP_DEREGISTER: req(0x5600_0042, 'absent', 'QCV'),
  VM_IRQ_ACCEPT: req(0x5600_0050, 'handled', 'QCV'),
  VM_IRQ_LEND: req(0x5600_0051, 'handled', 'QCV'),
  VM_IRQ_RELEASE: req(0x5600_0052, 'handled', 'QCV'),
  VM_IRQ_RECLAIM: req(0x5600_0053, 'handled', 'QCV'),
  VM_IRQ_NOTIFY: req(0x5600_0054, 'handled', 'QCV'),
  VM_IRQ_UNMAP: req(0x5600_0055, 'handled', 'QCV'),
  VM_DEVICE_ACCEPT: req(0x5600_0060, 'absent', 'QCV'),
  VM_DEVICE_LEND: req(0x5600_0061, 'absent', 'QCV'),
  VM_DEVICE_RELEASE: req(0x5600_0062, 'absent', 'QCV'),
  VM_DEVICE_RECLAIM: req(0x5600_0063, 'absent', 'QCV'),
  VM_DEVICE_NOTIFY: req(0x5600_0064, 'absent', 'QCV'),
  VM_DEVICE_FIND_HANDLE: req(0x5600_0065, 'absent', 'QCV'),
  VM_DEVICE_GET_RESOURCES: req(0x5600_0066, 'absent', 'QCV'),
  VM_DEVICE_BUS_LOCKDOWN: req(0x5600_0067, 'absent', 'QCV'),
  VM_DEVICE_BUS_UNLOCK: req(0x5600_0068, 'absent', 'QCV'),
  VM_SET_STATUS: req(0x5600_0080, 'handled', 'QCV'),
  VM_CONSOLE_OPEN: req(0x5600_0081, 'handled', 'QCV'),
  VM_CONSOLE_CLOSE: req(0x5600_0082, 'handled', 'QCV'),
  VM_CONSOLE_WRITE: req(0x5600_0083, 'handled', 'QCV'),
  VM_CONSOLE_FLUSH: req(0x5600_0084, 'handled', 'QCV'),
  VM_EXIT: req(0x5600_0085, 'handled', 'none'),
  VM_SET_CRASH_MSG: req(0x5600_0086, 'handled', 'none'),
  VM_HOST_GET_TYPE: req(0x5600_00a0, 'handled', 'QCV'),
  IPA_RESERVE: req(0x5600_00b0, 'handled', 'none'),
  IPA_UNRESERVE: req(0x5600_00b1, 'handled', 'none'),
  // §2.2 notifications (RM → client)
  MEM_SHARED: notif(0x5110_0011),
  MEM_RELEASED: notif(0x5110_0012),
  MEM_ACCEPTED: notif(0x5110_0013),
  MEM_RECALL: notif(0x5110_0014),
  VM_EXITED: notif(0x5610_0001),
  VM_SHUTDOWN: notif(0x5610_0002),
  VM_STATUS: notif(0x5610_0008),
  VM_IRQ_LENT: notif(0x5610_0011),
  VM_IRQ_RELEASED: notif(0x5610_0012),
  VM_IRQ_ACCEPTED: notif(0x5610_0013),
  VM_CONSOLE_CHARS: notif(0x5610_0080),
} as const satisfies Record<string, MessageIdRow>;

export type MessageName = keyof typeof MESSAGE_IDS;

export const MESSAGE_NAMES = Object.keys(MESSAGE_IDS) as readonly MessageName[];

/** Bit 20 marks a notification ID (§2 "notifications set bit 20"). */
export const NOTIFICATION_ID_BIT = 1 << 20;

const byId = new Map<number, MessageName>(MESSAGE_NAMES.map((name) => [MESSAGE_IDS[name].id, name]));

/** The catalogue name of a wire ID; undefined for an ID §2 does not list (the RM answers UNIMPLEMENTED). */
export const messageName = (id: number): MessageName | undefined => byId.get(id);

export const messageId = (name: MessageName): number => MESSAGE_IDS[name].id;
