/**
 * MEM_QCOM_LOOKUP_SGL, gunyah-rm.md §3.8: mem_type u8, reserved[3], label u32, ACL list, SGL list,
 * optional attr list (absent reads as empty, §3.1). Reply `[err][handle u32]` or LOOKUP_FAILED.
 */
import { layout, list, pad, u32, u8, type Infer } from '../layout.js';
import { aclEntry, attrEntry, handleReply, sglEntry } from './entries.js';

export const memLookupSglRequest = layout('MEM_QCOM_LOOKUP_SGL request', [
  u8('memType'),
  pad(3),
  u32('label'),
  list('acl', aclEntry),
  list('sgl', sglEntry),
  list('attrs', attrEntry),
]);
export type MemLookupSglRequest = Infer<typeof memLookupSglRequest>;
export const memLookupSglReply = handleReply('MEM_QCOM_LOOKUP_SGL reply');
