/** Table test of the pure router over GitLab's documented example payloads (test/fixtures/gitlab/payloads). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mayCarryCommand, type RouteResult, routeEvent } from "../../src/receiver/route-event.js";
import { commandNote, examplePayload, type Payload } from "../support/webhook-client.js";

const config = { trust: { branch_prefix: "trusted-" } };

/** The example payload `name`, with `edit` applied to a fresh copy. */
function edited(name: Parameters<typeof examplePayload>[0], edit: (p: Payload) => void): Payload {
  const payload = examplePayload(name);
  edit(payload);
  return payload;
}

const NOTE_SHA = "562e173be03b8ff2efb05345d12df18815438a4b";

const cases: Array<{ name: string; event: string | undefined; payload: unknown; expected: RouteResult }> = [
  {
    name: "MR opened: reconcile in the target project",
    event: "Merge Request Hook",
    payload: examplePayload("merge_request"),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:open" }] },
  },
  {
    name: "fork MR update: the hook fires on the target, which the job names",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { source_project_id: 99, target_project_id: 14, action: "update" });
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:update" }] },
  },
  {
    name: "MR payload without target_project_id: the hook's project",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      delete p["object_attributes"]!["target_project_id"];
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 1, mrIid: 1, reason: "Merge Request Hook:open" }] },
  },
  {
    name: "MR payload without iid",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      delete p["object_attributes"]!["iid"];
    }),
    expected: {
      ignored:
        "Merge Request Hook payload not understood: object_attributes.iid: Invalid input: expected number, received undefined",
    },
  },
  {
    name: "the documented note is conversation",
    event: "Note Hook",
    payload: examplePayload("note_merge_request"),
    expected: { ignored: "note carries no command" },
  },
  {
    name: "a /trust note is a command job with what the commenter saw",
    event: "Note Hook",
    payload: commandNote("/trust"),
    expected: {
      jobs: [
        {
          kind: "command",
          projectId: 5,
          mrIid: 1,
          noteId: 1244,
          noteUrl: "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
          body: "/trust",
          action: "create",
          system: false,
          author: { id: 1, username: "root" },
          seenSha: NOTE_SHA,
          mrState: "opened",
        },
      ],
    },
  },
  {
    name: "an edited command note is still a job, marked update",
    event: "Note Hook",
    payload: edited("note_merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { note: "LGTM\n  /trust", action: "update" });
    }),
    expected: {
      jobs: [
        {
          kind: "command",
          projectId: 5,
          mrIid: 1,
          noteId: 1244,
          noteUrl: "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
          body: "LGTM\n  /trust",
          action: "update",
          system: false,
          author: { id: 1, username: "root" },
          seenSha: NOTE_SHA,
          mrState: "opened",
        },
      ],
    },
  },
  {
    name: "a system note that looks like a command is a job marked system",
    event: "Note Hook",
    payload: edited("note_merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { note: "/untrust", system: true });
      delete p["object_attributes"]!["action"];
    }),
    expected: {
      jobs: [
        {
          kind: "command",
          projectId: 5,
          mrIid: 1,
          noteId: 1244,
          noteUrl: "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
          body: "/untrust",
          action: "create",
          system: true,
          author: { id: 1, username: "root" },
          seenSha: NOTE_SHA,
          mrState: "opened",
        },
      ],
    },
  },
  {
    name: "a note action the bot does not know",
    event: "Note Hook",
    payload: edited("note_merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { note: "/trust", action: "delete" });
    }),
    expected: { ignored: "note action delete is not used" },
  },
  {
    name: "a command on an issue",
    event: "Note Hook",
    payload: edited("note_merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { note: "/trust", noteable_type: "Issue" });
      delete p["merge_request"];
    }),
    expected: { ignored: "note on Issue, not on a merge request" },
  },
  {
    name: "a command on a commit",
    event: "Note Hook",
    payload: edited("note_merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { note: "/trust", noteable_type: "Commit" });
    }),
    expected: { ignored: "note on Commit, not on a merge request" },
  },
  {
    name: "push to a branch",
    event: "Push Hook",
    payload: examplePayload("push"),
    expected: {
      jobs: [
        {
          kind: "push",
          projectId: 15,
          branch: "master",
          before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
          after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
          userId: 4,
          // GitLab's example lists 2 of its 4 commits (`total_commits_count`): the policy file may have changed.
          policyFile: true,
        },
      ],
    },
  },
  {
    name: "push to the default branch that modifies the policy file: the policy is read again",
    event: "Push Hook",
    payload: edited("push", (p) => {
      Object.assign(p, {
        total_commits_count: 1,
        commits: [{ added: [], modified: [".gitlab/trusted-mr-bot.yml"], removed: [] }],
      });
    }),
    expected: {
      jobs: [
        {
          kind: "push",
          projectId: 15,
          branch: "master",
          before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
          after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
          userId: 4,
          policyFile: true,
        },
      ],
    },
  },
  {
    name: "push to another branch that modifies the policy file: nothing to read (only the default branch counts)",
    event: "Push Hook",
    payload: edited("push", (p) => {
      Object.assign(p, {
        ref: "refs/heads/feature",
        total_commits_count: 1,
        commits: [{ added: [".gitlab/trusted-mr-bot.yml"], modified: [], removed: [] }],
      });
    }),
    expected: {
      jobs: [
        {
          kind: "push",
          projectId: 15,
          branch: "feature",
          before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
          after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
          userId: 4,
        },
      ],
    },
  },
  {
    name: "branch deleted: still a push (the worker revokes)",
    event: "Push Hook",
    payload: edited("push", (p) => {
      Object.assign(p, { ref: "refs/heads/feature/x", after: "0".repeat(40), checkout_sha: null });
    }),
    expected: {
      jobs: [
        {
          kind: "push",
          projectId: 15,
          branch: "feature/x",
          before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
          after: "0".repeat(40),
          userId: 4,
        },
      ],
    },
  },
  {
    name: "push of a tag",
    event: "Push Hook",
    payload: edited("push", (p) => {
      Object.assign(p, { ref: "refs/tags/v1.0" });
    }),
    expected: { ignored: "push to refs/tags/v1.0, not to a branch" },
  },
  {
    name: "MR pipeline: reconcile that MR",
    event: "Pipeline Hook",
    payload: examplePayload("pipeline"),
    expected: { jobs: [{ kind: "reconcile", projectId: 1, mrIid: 1, reason: "Pipeline Hook:success" }] },
  },
  {
    name: "trusted pipeline named by its TRUSTED_MR_IID variable: a pipeline job (its status becomes a durable hint) for that MR",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      Object.assign(p["object_attributes"]!, {
        ref: "trusted-feature",
        status: "running",
        variables: [{ key: "TRUSTED_MR_IID", value: "7" }],
      });
      p["merge_request"] = null as unknown as Record<string, unknown>;
    }),
    expected: {
      jobs: [
        {
          kind: "pipeline",
          projectId: 1,
          pipelineId: 31,
          ref: "trusted-feature",
          sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
          status: "running",
          mrIid: 7,
        },
      ],
    },
  },
  {
    name: "a pipeline carrying TRUSTED_MR_IID is a pipeline job whatever its ref (the worker reads the truth)",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      Object.assign(p["object_attributes"]!, {
        ref: "feature",
        status: "failed",
        variables: [{ key: "TRUSTED_MR_IID", value: "7" }],
      });
      p["merge_request"] = null as unknown as Record<string, unknown>;
    }),
    expected: {
      jobs: [
        {
          kind: "pipeline",
          projectId: 1,
          pipelineId: 31,
          ref: "feature",
          sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
          status: "failed",
          mrIid: 7,
        },
      ],
    },
  },
  {
    name: "a TRUSTED_MR_IID that is not an iid is ignored: the ref decides",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      Object.assign(p["object_attributes"]!, {
        ref: "trusted-feature",
        status: "success",
        variables: [{ key: "TRUSTED_MR_IID", value: "7; rm -rf" }],
      });
      p["merge_request"] = null as unknown as Record<string, unknown>;
    }),
    expected: {
      jobs: [
        {
          kind: "pipeline",
          projectId: 1,
          pipelineId: 31,
          ref: "trusted-feature",
          sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
          status: "success",
        },
      ],
    },
  },
  {
    name: "a tag that looks like a trusted branch is not one",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      Object.assign(p["object_attributes"]!, { ref: "trusted-v1", tag: true });
      p["merge_request"] = null as unknown as Record<string, unknown>;
    }),
    expected: { ignored: "pipeline on a branch the bot does not manage" },
  },
  {
    name: "pipeline on a trusted branch without the variable: find its MR in the worker",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      Object.assign(p["object_attributes"]!, { ref: "trusted-feature", status: "failed" });
      delete p["merge_request"];
    }),
    expected: {
      jobs: [
        {
          kind: "pipeline",
          projectId: 1,
          pipelineId: 31,
          ref: "trusted-feature",
          sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
          status: "failed",
        },
      ],
    },
  },
  {
    name: "branch pipeline the bot does not manage",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      p["merge_request"] = null as unknown as Record<string, unknown>;
    }),
    expected: { ignored: "pipeline on a branch the bot does not manage" },
  },
  {
    name: "an event the bot does not use",
    event: "Job Hook",
    payload: { object_kind: "build" },
    expected: { ignored: "event Job Hook is not used" },
  },
  {
    name: "no X-Gitlab-Event",
    event: undefined,
    payload: examplePayload("merge_request"),
    expected: { ignored: "no X-Gitlab-Event header" },
  },
  {
    name: "valid JSON that is not an object",
    event: "Push Hook",
    payload: [1, 2, 3],
    expected: { ignored: "Push Hook payload not understood: payload: Invalid input: expected object, received array" },
  },
  // Free events (issue "Scale"): dropped from the payload alone, so they cost no GitLab call and no reconcile.
  {
    name: "MR update that changed only the title and description: free",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      p["object_attributes"]!["action"] = "update";
      p["changes"] = {
        title: { previous: "a", current: "b" },
        description: { previous: "", current: "x" },
        updated_at: { previous: "2013-12-03 17:23:34 UTC", current: "2013-12-03 17:24:34 UTC" },
      };
    }),
    expected: {
      ignored: "Merge Request Hook:update changed only description, title, updated_at, which the bot does not read",
    },
  },
  {
    name: "MR update with the documented changes (labels, draft): routed, the bot manages labels",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      p["object_attributes"]!["action"] = "update";
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:update" }] },
  },
  {
    name: "MR update that pushed commits (oldrev), even with only the title in changes: routed",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      Object.assign(p["object_attributes"]!, { action: "update", oldrev: "0".repeat(40) });
      p["changes"] = { title: { previous: "a", current: "b" } };
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:update" }] },
  },
  {
    name: "MR update with empty changes: routed (when unsure, route)",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      p["object_attributes"]!["action"] = "update";
      p["changes"] = {};
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:update" }] },
  },
  {
    name: "MR update with a key the bot does not know (target_branch): routed",
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      p["object_attributes"]!["action"] = "update";
      p["changes"] = { title: {}, target_branch: { previous: "master", current: "main" } };
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 14, mrIid: 1, reason: "Merge Request Hook:update" }] },
  },
  ...(["approved", "unapproved", "approval", "unapproval"] as const).map((action) => ({
    name: `MR ${action}: free, the bot's own approval is in its record`,
    event: "Merge Request Hook",
    payload: edited("merge_request", (p) => {
      p["object_attributes"]!["action"] = action;
    }),
    expected: { ignored: `Merge Request Hook:${action} changes nothing the bot shows` },
  })),
  {
    name: "contributor pipeline of a fork MR: free",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      p["merge_request"]!["source_project_id"] = 99;
    }),
    expected: { ignored: "contributor pipeline of a fork merge request: nothing the bot shows depends on it" },
  },
  {
    name: "pipeline of an MR whose fork was deleted (source_project_id null): free",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      p["merge_request"]!["source_project_id"] = null;
    }),
    expected: { ignored: "contributor pipeline of a fork merge request: nothing the bot shows depends on it" },
  },
  {
    name: "same-project MR pipeline: routed (merge gating posts into its head pipeline)",
    event: "Pipeline Hook",
    payload: edited("pipeline", (p) => {
      p["merge_request"]!["source_project_id"] = 1;
    }),
    expected: { jobs: [{ kind: "reconcile", projectId: 1, mrIid: 1, reason: "Pipeline Hook:success" }] },
  },
];

describe("routeEvent", () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(routeEvent(c.event, c.payload, config), c.expected);
    });
  }
});

describe("mayCarryCommand", () => {
  const table: Array<[string, boolean]> = [
    ["/trust", true],
    ["   /trust", true],
    ["\t/retry now", true],
    ["Looks good.\n/trust\nthanks", true],
    ["Looks good.\r\n/trust", true],
    ["please /trust this", false],
    ["`/trust`", false],
    ["/ trust", false],
    ["/1", false],
    ["//trust", false],
    ["", false],
  ];
  for (const [note, expected] of table) {
    it(`${JSON.stringify(note)} → ${expected}`, () => {
      assert.equal(mayCarryCommand(note), expected);
    });
  }
});
