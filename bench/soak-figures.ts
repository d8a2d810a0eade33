/**
 * The soak's figures (bench/soak.ts), computed from records only: the commands the scenario posted, the ordered
 * stream of events the simulator sent to the soak's own recording hook, the bot's notes and award emoji, the
 * pipelines GitLab holds and the audit stream. No I/O here; the definitions are in bench/soak.ts's header.
 */
import { parseTrustedBranchName } from "../src/trust/decide.js";

export type SoakCommand = "trust" | "retest" | "untrust";

/** A committer's command as the scenario posted it. */
export interface SentCommand {
  noteId: number;
  iid: number;
  command: SoakCommand;
  author: string;
  /** The MR head at the moment the note was posted. */
  headAtPost: string;
  /** `/trust <sha>`: the SHA named. */
  namedSha?: string;
}

/** The SHA a `/trust` asks for: the one named, else the MR head when the note was posted. */
export function trustTarget(c: SentCommand): string {
  return c.namedSha ?? c.headAtPost;
}

/**
 * One webhook the simulator sent to the recording hook, in the order GitLab emitted them (deliveries go out one at a
 * time in event order), numbered by `seq`. Only what the figures need.
 */
export type StreamEvent =
  | { kind: "push"; seq: number; ref: string; before: string; after: string; userId: number }
  | { kind: "note"; seq: number; noteId: number; iid: number }
  | { kind: "pipeline"; seq: number; id: number; ref: string; sha: string; status: string; source: string; userId: number }
  | { kind: "mr"; seq: number; iid: number; action: string };

export interface FigureInputs {
  commands: SentCommand[];
  events: StreamEvent[];
  botUserId: number;
  /** Usernames of the committers the scenario uses. */
  committers: ReadonlySet<string>;
  branchPrefix: string;
  /** MR iid -> its trusted branch name. */
  trustedBranchOf: (iid: number) => string;
  /** Note ids that carry an award emoji by the bot. */
  awardedNoteIds: ReadonlySet<number>;
  /** The bot's notes other than its sticky one (its replies), on every MR. */
  replies: Array<{ iid: number; noteId: number; body?: string }>;
  /** Pipelines the bot created (source `api`, user = bot) in the target project. */
  botPipelines: Array<{ id: number; ref: string; sha: string }>;
  audit: Array<Record<string, string>>;
}

export interface CommandTally {
  sent: number;
  awarded: number;
  effectOnly: number;
  answered: number;
  lost: number;
}

export interface Figures {
  byCommand: Record<SoakCommand, CommandTally>;
  total: CommandTally;
  /** Commands lost, for the report (note id, MR, command). */
  lost: SentCommand[];
  /** Bot replies no command could be matched to (a command answered twice, or replies to something else). */
  unmatchedReplies: Array<{ iid: number; noteId: number; body?: string }>;
  duplicatePipelines: number;
  duplicates: Array<{ ref: string; sha: string; pipelines: number; allowed: number }>;
  untrustedMoves: number;
  untrusted: Array<{ ref: string; sha: string; seq: number }>;
  unknownGrants: number;
  unknownGrantEntries: Array<Record<string, string>>;
  /** Every `grant` entry in the audit stream. */
  grants: number;
}

const BLANK_SHA = "0000000000000000000000000000000000000000";
const ACTIVE = new Set(["created", "waiting_for_resource", "preparing", "pending", "running", "scheduled", "manual"]);

export function computeFigures(input: FigureInputs): Figures {
  const { events, botUserId } = input;
  const noteSeq = new Map<number, number>();
  for (const e of events) if (e.kind === "note") noteSeq.set(e.noteId, e.seq);
  /** Position of a command in the stream; a note whose event never arrived is placed after everything. */
  const seqOf = (c: SentCommand) => noteSeq.get(c.noteId) ?? Number.POSITIVE_INFINITY;
  const refPrefix = "refs/heads/";

  // The bot's branch writes, pipeline starts (a new pipeline, or a finished one made active again by a retry) and
  // the MRs' merge/close events, per trusted branch / MR, in stream order.
  const botPushes = events.filter(
    (e): e is Extract<StreamEvent, { kind: "push" }> =>
      e.kind === "push" && e.userId === botUserId && e.ref.startsWith(`${refPrefix}${input.branchPrefix}`),
  );
  // What a carried-out /retest leaves: a retry (a finished bot pipeline made active again), or a new bot pipeline
  // that is not the first since the bot last wrote the branch (the first is the grant's own).
  const retestStarts = new Map<string, Array<{ seq: number; sha: string }>>();
  const lastStatus = new Map<number, string>();
  const sinceWrite = new Map<string, number>();
  for (const e of events) {
    if (e.kind === "push" && e.userId === botUserId) sinceWrite.set(e.ref.slice(refPrefix.length), 0);
    if (e.kind !== "pipeline" || e.userId !== botUserId || e.source !== "api") continue;
    const before = lastStatus.get(e.id);
    lastStatus.set(e.id, e.status);
    let retest = false;
    if (before === undefined) {
      const n = sinceWrite.get(e.ref) ?? 0;
      sinceWrite.set(e.ref, n + 1);
      retest = n > 0;
    } else {
      retest = !ACTIVE.has(before) && ACTIVE.has(e.status);
    }
    if (retest) retestStarts.set(e.ref, [...(retestStarts.get(e.ref) ?? []), { seq: e.seq, sha: e.sha }]);
  }
  const endedAt = new Map<number, number[]>();
  for (const e of events) {
    if (e.kind === "mr" && (e.action === "merge" || e.action === "close")) {
      endedAt.set(e.iid, [...(endedAt.get(e.iid) ?? []), e.seq]);
    }
  }

  const effectVisible = (c: SentCommand): boolean => {
    const ref = input.trustedBranchOf(c.iid);
    const at = seqOf(c);
    switch (c.command) {
      case "trust":
        return botPushes.some((p) => p.ref === refPrefix + ref && p.after === trustTarget(c) && p.seq > at);
      case "untrust":
        return botPushes.some(
          (p) =>
            p.ref === refPrefix + ref &&
            p.after === BLANK_SHA &&
            p.seq > at &&
            !(endedAt.get(c.iid) ?? []).some((s) => s > at && s < p.seq),
        );
      case "retest":
        return (retestStarts.get(ref) ?? []).some((s) => s.seq > at && s.sha === c.headAtPost);
    }
  };

  const empty = (): CommandTally => ({ sent: 0, awarded: 0, effectOnly: 0, answered: 0, lost: 0 });
  const byCommand: Record<SoakCommand, CommandTally> = { trust: empty(), retest: empty(), untrust: empty() };
  const carried = new Set<number>();
  for (const c of input.commands) {
    const tally = byCommand[c.command];
    tally.sent += 1;
    if (input.awardedNoteIds.has(c.noteId)) {
      tally.awarded += 1;
      carried.add(c.noteId);
    } else if (effectVisible(c)) {
      tally.effectOnly += 1;
      carried.add(c.noteId);
    }
  }

  // Replies are not threaded: each reply on an MR answers at most one command posted before it there that was not
  // carried out. Matching replies in order to any such earlier command gives the largest possible matching.
  const answered = new Set<number>();
  const unmatchedReplies: FigureInputs["replies"] = [];
  const repliesByMr = new Map<number, FigureInputs["replies"]>();
  for (const r of input.replies) repliesByMr.set(r.iid, [...(repliesByMr.get(r.iid) ?? []), r]);
  for (const [iid, replies] of repliesByMr) {
    const open = input.commands
      .filter((c) => c.iid === iid && !carried.has(c.noteId))
      .map((c) => c.noteId)
      .sort((a, b) => a - b);
    for (const reply of replies.sort((a, b) => a.noteId - b.noteId)) {
      const i = open.findIndex((noteId) => noteId < reply.noteId);
      if (i < 0) {
        unmatchedReplies.push(reply);
        continue;
      }
      answered.add(open[i]!);
      open.splice(i, 1);
    }
  }
  const lost: SentCommand[] = [];
  for (const c of input.commands) {
    if (!answered.has(c.noteId)) {
      if (!carried.has(c.noteId)) {
        byCommand[c.command].lost += 1;
        lost.push(c);
      }
      continue;
    }
    byCommand[c.command].answered += 1;
  }
  const total = empty();
  for (const t of Object.values(byCommand)) {
    for (const k of Object.keys(total) as Array<keyof CommandTally>) total[k] += t[k];
  }

  // Duplicate pipelines: per (trusted branch, SHA), bot pipelines beyond what grants and carried-out retests allow.
  const perRefSha = new Map<string, { ref: string; sha: string; pipelines: number; allowed: number }>();
  const slot = (ref: string, sha: string) => {
    const key = `${ref} ${sha}`;
    let s = perRefSha.get(key);
    if (!s) {
      s = { ref, sha, pipelines: 0, allowed: 0 };
      perRefSha.set(key, s);
    }
    return s;
  };
  for (const p of input.botPipelines) slot(p.ref, p.sha).pipelines += 1;
  for (const p of botPushes) if (p.after !== BLANK_SHA) slot(p.ref.slice(refPrefix.length), p.after).allowed += 1;
  // A retest runs on the grant it finds (audited with that SHA), which is not the head it was posted at when a newer
  // `/trust` was carried out while the `/retest` waited.
  for (const a of input.audit) {
    if (a["event"] === "retest" && a["branch"] && a["sha"]) slot(a["branch"], a["sha"]).allowed += 1;
  }
  const duplicates = [...perRefSha.values()].filter((s) => s.pipelines > s.allowed);
  const duplicatePipelines = duplicates.reduce((n, s) => n + (s.pipelines - s.allowed), 0);

  // Untrusted moves: every bot write of a trusted branch to a SHA needs a committer's /trust on that MR, posted
  // before it, that asked for that SHA.
  const untrusted: Array<{ ref: string; sha: string; seq: number }> = [];
  for (const p of botPushes) {
    if (p.after === BLANK_SHA) continue;
    const ref = p.ref.slice(refPrefix.length);
    const iid = parseTrustedBranchName(input.branchPrefix, ref)?.iid;
    const asked = input.commands.some(
      (c) =>
        c.command === "trust" &&
        c.iid === iid &&
        input.committers.has(c.author) &&
        trustTarget(c) === p.after &&
        seqOf(c) < p.seq,
    );
    if (!asked) untrusted.push({ ref, sha: p.after, seq: p.seq });
  }

  const grantEntries = input.audit.filter((a) => a["event"] === "grant");
  const unknownGrantEntries = grantEntries.filter(
    (a) => !input.committers.has(a["by"] ?? "") || /by hand/i.test(a["reason"] ?? ""),
  );

  return {
    byCommand,
    total,
    lost,
    unmatchedReplies,
    duplicatePipelines,
    duplicates,
    untrustedMoves: untrusted.length,
    untrusted,
    unknownGrants: unknownGrantEntries.length,
    unknownGrantEntries,
    grants: grantEntries.length,
  };
}

/** Seeded PRNG (mulberry32): the scenario's choices repeat for one `--seed`. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
