/**
 * The simulator's internal notes (`Notes::PostProcessService`, `Notes::BuildService`, `lib/api/notes.rb`), hook
 * signing per instance (`lib/api/helpers/web_hooks_helpers.rb`, `app/services/web_hook_service.rb`, GitLab 19.0)
 * and `GET /metadata` (`lib/api/metadata.rb`).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { client, rejectsWith, seedWorld, startReceiver } from "./helpers.js";

const SIGNING_TOKEN = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;

describe("internal notes", () => {
  test("an internal note fires Confidential Note Hook to confidential_note_events hooks only; a public one Note Hook to note_events hooks only", async (t) => {
    const { sim, committer, contributor, app, fork } = await seedWorld();
    const notes = await startReceiver();
    const confidential = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await notes.close();
      await confidential.close();
    });
    sim.addHook(app.id, { url: notes.url, pushEvents: false, noteEvents: true });
    sim.addHook(app.id, { url: confidential.url, pushEvents: false, confidentialNoteEvents: true });
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust", { internal: true });
    sim.comment(app.id, mr.iid, committer.id, "public");
    await sim.idle();

    assert.deepEqual(
      notes.received.map((r) => [r.headers["x-gitlab-event"], JSON.parse(r.body).object_attributes.note]),
      [["Note Hook", "public"]],
    );
    assert.equal(confidential.received.length, 1);
    const [internal] = confidential.received;
    assert.equal(internal?.headers["x-gitlab-event"], "Confidential Note Hook");
    const payload = JSON.parse(internal?.body ?? "{}");
    assert.equal(payload.event_type, "confidential_note");
    assert.equal(payload.object_attributes.internal, true);
  });

  test("POST notes with internal: kept for a Reporter, dropped for a non-member; internal notes hidden from non-members", async (t) => {
    const { sim, reporter, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    const byReporter = await client(sim, reporter).MergeRequestNotes.create(app.id, mr.iid, "secret", {
      internal: true,
    } as never);
    assert.deepEqual([byReporter.internal, byReporter.confidential], [true, true]);
    const byContributor = await client(sim, contributor).MergeRequestNotes.create(app.id, mr.iid, "mine", {
      internal: true,
    } as never);
    assert.equal(byContributor.internal, false, "Notes::BuildService drops what the author may not set");

    const seen = await client(sim, contributor).MergeRequestNotes.all(app.id, mr.iid);
    assert.deepEqual(
      seen.map((n) => n.body),
      ["mine"],
    );
    await rejectsWith(client(sim, contributor).MergeRequestNotes.show(app.id, mr.iid, byReporter.id), 404);
  });
});

describe("the instance", () => {
  test("GET /metadata and GET /version answer version, revision, kas and enterprise", async (t) => {
    const { sim, bot } = await seedWorld();
    t.after(() => sim.stop());
    sim.setInstance({ version: "18.4.1-ee", enterprise: true });
    const api = client(sim, bot);
    const metadata = await api.Metadata.show();
    assert.deepEqual(
      [metadata.version, metadata.enterprise, (metadata.kas as { enabled: boolean }).enabled],
      ["18.4.1-ee", true, false],
    );
    const version = await (
      await fetch(`${sim.url}/api/v4/version`, { headers: { "PRIVATE-TOKEN": bot.token } })
    ).json();
    assert.deepEqual(version, metadata);
  });

  test("GitLab 19.0 keeps a signing_token, says signing_token_present, and signs the deliveries", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    const api = client(sim, bot);
    await rejectsWith(api.ProjectHooks.add(app.id, receiver.url, { signingToken: "whsec_c2hvcnQ=" } as never), 422);
    const hook = await api.ProjectHooks.add(app.id, receiver.url, {
      pushEvents: false,
      noteEvents: true,
      confidentialNoteEvents: true,
      signingToken: SIGNING_TOKEN,
    } as never);
    assert.deepEqual([hook["signing_token_present"], hook.confidential_note_events], [true, true]);
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    await sim.idle();
    assert.match(String(receiver.received[0]?.headers["webhook-signature"]), /^v1,/);
  });

  test("before 19.0 the signing_token is dropped like an unknown parameter: no signing_token_present, no webhook-* headers", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.setInstance({ version: "18.11.0", webhookSigning: false });
    const hook = await client(sim, bot).ProjectHooks.add(app.id, receiver.url, {
      pushEvents: false,
      noteEvents: true,
      signingToken: SIGNING_TOKEN,
    } as never);
    assert.equal("signing_token_present" in hook, false);
    assert.equal(sim.hooks(app.id)[0]?.signingToken, null);
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    await sim.idle();
    const [delivery] = receiver.received;
    assert.ok(delivery);
    assert.deepEqual(
      ["webhook-id", "webhook-timestamp", "webhook-signature"].map((h) => delivery.headers[h]),
      [undefined, undefined, undefined],
    );
    assert.equal(delivery.headers["user-agent"], "GitLab/18.11.0");
  });

  test("19.0 with the webhook_signing_token flag off: signing_token_present false, nothing signed", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.setInstance({ webhookSigning: false });
    const hook = await client(sim, bot).ProjectHooks.add(app.id, "http://127.0.0.1:9/hook", {
      signingToken: SIGNING_TOKEN,
    } as never);
    assert.equal(hook["signing_token_present"], false);
  });
});
