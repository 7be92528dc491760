/**
 * hypmesh.fault.v1.FaultService over one FaultEngine (issue 8 §2): the same handlers in every
 * service, so a test in any language arms, lists and disarms faults and watches them happen.
 *
 * Arm converts the request's plan through proto3 JSON (ts-proto's toJSON, then @hypmesh/fault's
 * loader), so the RPC and `--faults plan.json` share one reader and one set of error messages; a
 * bad plan is INVALID_ARGUMENT with a google.rpc.BadRequest listing every violation by path, and
 * the armed plan stays as it was. Disarm with unknown ids is NOT_FOUND naming them, nothing removed.
 * Events streams every FaultEvent from subscription on, until the client cancels.
 */

import * as grpc from '@grpc/grpc-js';
import { eventToJson, formatIssues, planFromJson, ruleToJson, type FaultEngine } from '@hypmesh/fault';
import { BadRequest } from '@hypmesh/proto';
import { FaultEvent, FaultPlan, FaultRule, type FaultServiceServer } from '@hypmesh/proto/fault';
import { DETAIL_TYPES, StatusError, packAny } from './status-details.js';
import { invalidArgument } from './status.js';

export function faultServiceHandlers(engine: FaultEngine): FaultServiceServer {
  return {
    arm: (call, callback) => {
      const plan = planFromJson(FaultPlan.toJSON(call.request.plan ?? { rules: [] }));
      if (!plan.ok) {
        const bad: BadRequest = { fieldViolations: plan.error.map((i) => ({ field: `plan.${i.path}`, description: i.message })) };
        callback(new StatusError(grpc.status.INVALID_ARGUMENT, formatIssues(plan.error), [packAny(DETAIL_TYPES.badRequest, BadRequest, bad)]));
        return;
      }
      const armed = engine.arm(plan.value, call.request.seed);
      // The loader already validated; arm re-validates the same plan, so this cannot refuse.
      if (!armed.ok) callback(new StatusError(grpc.status.INTERNAL, formatIssues(armed.error)));
      else callback(null, { rulesArmed: armed.value });
    },
    disarm: (call, callback) => {
      const { ruleIds, all } = call.request;
      if (!all && ruleIds.length === 0) {
        callback(invalidArgument('rule_ids', 'name the rules to disarm, or set all'));
        return;
      }
      const r = engine.disarm(all ? 'all' : ruleIds);
      if (!r.ok) callback(new StatusError(grpc.status.NOT_FOUND, `no armed rule with id ${r.error.unknownIds.join(', ')}; nothing disarmed`));
      else callback(null, { rulesDisarmed: r.value });
    },
    list: (_call, callback) => {
      const { seed, rules } = engine.list();
      callback(null, {
        seed,
        rules: rules.map((r) => ({ rule: FaultRule.fromJSON(ruleToJson(r.rule)), matched: BigInt(r.matched), fired: BigInt(r.fired) })),
      });
    },
    events: (call) => {
      const off = engine.subscribe((e) => {
        call.write({ event: FaultEvent.fromJSON(eventToJson(e)) });
      });
      // The stream ends when the client cancels or the server shuts down; nothing else to do.
      call.on('cancelled', off);
      call.on('close', off);
    },
  };
}
