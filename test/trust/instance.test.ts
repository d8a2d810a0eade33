/**
 * Knowing the instance: `setup` reports the GitLab it found, subscribes the hook to internal notes, and sends
 * `webhook.signing_token` only where GitLab keeps it (GitLab 19.0+, `webhook_signing_token` flag), saying clearly
 * when it does not. Against the simulator over HTTP, set up as different GitLab versions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PermanentError } from "../../src/errors.js";
import { runSetup, type SetupStep } from "../../src/trust/setup.js";
import { captureLogger } from "../support/capture-logger.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

/** A token in GitLab's format: `whsec_` and the base64 of 32 bytes. */
const SIGNING_TOKEN = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;

/** Removes the hook the test world made, so that the one `setup` makes is the only way events reach the bot. */
async function withoutWorldHook(w: TrustWorld): Promise<void> {
  for (const hook of w.sim.hooks(w.app.id)) await w.as(w.maya).ProjectHooks.remove(w.app.id, hook.id);
}

async function setup(w: TrustWorld, dryRun = false): Promise<{ steps?: SetupStep[]; error?: unknown; out: string }> {
  const lines: string[] = [];
  try {
    const steps = await runSetup({
      config: w.config,
      logger: captureLogger("warn").logger,
      projectPath: "org/app",
      dryRun,
      webhookUrl: `${w.service.receiverUrl}/webhook`,
      out: { write: (t: string) => lines.push(t) },
    });
    return { steps, out: lines.join("") };
  } catch (error) {
    return { error, out: lines.join("") };
  }
}

describe("setup and the instance", () => {
  it("setup's hook brings internal-note commands to the bot (Confidential Note Hook)", async () => {
    const w = await start();
    await withoutWorldHook(w);
    const { steps, out } = await setup(w);
    assert.ok(steps, out);
    assert.equal(w.sim.hooks(w.app.id)[0]?.confidentialNoteEvents, true);

    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`, { internal: true });
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha);
  });

  it("with webhook.signing_token, setup gives GitLab 19.0 the token and the bot accepts the signed deliveries", async () => {
    const w = await start({ config: { webhook: { signing_token: SIGNING_TOKEN } } });
    await withoutWorldHook(w);
    const { steps, out } = await setup(w);
    assert.ok(steps, out);
    assert.match(out, /\[ok\] webhook signing: GitLab kept the signing token/);
    assert.equal(w.sim.hooks(w.app.id)[0]?.signingToken, SIGNING_TOKEN);

    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "signed deliveries are accepted");
    assert.ok(
      w.sim.deliveryLog.every((d) => d.status === 202 || d.status === 200),
      JSON.stringify(w.sim.deliveryLog),
    );
  });

  it("setup refuses webhook.signing_token against GitLab 18.11, names the version, and saves no hook", async () => {
    const w = await start({ config: { webhook: { signing_token: SIGNING_TOKEN } } });
    w.sim.setInstance({ version: "18.11.2", webhookSigning: false });
    await withoutWorldHook(w);
    const { error, out } = await setup(w);
    assert.ok(error instanceof PermanentError, out);
    assert.match(
      out,
      /\[PROBLEM\] webhook signing: this GitLab \(version 18\.11\.2\) does not sign webhooks; unset webhook\.signing_token or every delivery will be refused \(401\) and GitLab will disable the hook/,
    );
    assert.deepEqual(w.sim.hooks(w.app.id), [], "no hook whose every delivery the bot would refuse");
  });

  it("GitLab 19.0 with the webhook_signing_token flag off drops the token silently (lib/api/helpers/web_hooks_helpers.rb); setup says so", async () => {
    const w = await start({ config: { webhook: { signing_token: SIGNING_TOKEN } } });
    w.sim.setInstance({ version: "19.0.0", webhookSigning: false });
    await withoutWorldHook(w);
    const { error, out } = await setup(w);
    assert.ok(error instanceof PermanentError, out);
    assert.match(
      out,
      /\[PROBLEM\] webhook signing: this GitLab \(version 19\.0\.0\) does not sign webhooks;.*feature flag is off/,
    );
    assert.equal(w.sim.hooks(w.app.id)[0]?.signingToken, null, "GitLab did not keep it");
  });

  it("a signing token GitLab would refuse (not 32 bytes) is named before anything is saved", async () => {
    const w = await start({ config: { webhook: { signing_token: "whsec_c2hvcnQ=" } } });
    await withoutWorldHook(w);
    const { error, out } = await setup(w);
    assert.ok(error instanceof PermanentError, out);
    assert.match(
      out,
      /\[PROBLEM\] webhook signing: webhook\.signing_token must be whsec_ followed by the base64 of a 32-byte key/,
    );
    assert.deepEqual(w.sim.hooks(w.app.id), []);
  });

  it("setup names the version and edition it found, and the gating mechanism", async () => {
    const w = await start();
    w.sim.setInstance({ version: "19.1.0-ee", revision: "abc123", enterprise: true });
    const { steps, out } = await setup(w, true);
    assert.ok(steps, out);
    assert.match(
      out,
      /\[ok\] instance: GitLab 19\.1\.0-ee \(Enterprise Edition, tier unknown \(the license is visible to administrators only\), revision abc123\) at http:\/\/127\.0\.0\.1:\d+; webhook signing: supported .*; not configured; merge gating: same-project MRs: the trusted status in the MR's head pipeline .*; every MR: \/merge-trusted/,
    );
  });
});
