/**
 * The README's first command, `npm run demo`, as a test: the whole fork-MR workflow against the simulator and the
 * suite's Redis, with the transcript checked for what a committer must see at each step.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { runDemo } from "../../src/demo/demo.js";
import { REDIS_URL } from "../support/redis.js";

describe("demo", () => {
  it("plays open, /trust, failure, stale push, /trust again, success, /merge-trusted and cleanup", async () => {
    let transcript = "";
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        transcript += chunk.toString("utf8");
        callback();
      },
    });
    await runDemo({ out, redisUrl: REDIS_URL, logLevel: "silent" });

    const steps = transcript.split(/^── \d+\. /m).slice(1);
    assert.equal(steps.length, 7, transcript);
    const [setup, opened, trusted, failed, stale, retrusted, merged] = steps as [string, ...string[]];
    assert.match(setup, /\[create\] protected branches trusted-\*/);
    // The demo's project has GitLab.com's default for new projects: nobody may set pipeline variables.
    assert.match(setup, /\[ok\] pipeline variables: no_one_allowed .*without variables.*bot-username: trusted-mr-bot/);
    assert.match(opened!, /commit status trusted-pipeline: pending — Waiting for a committer/);
    assert.match(opened!, /Welcome, @carl/);
    // The trusted pipeline starts anyway: created by the bot through the API, without variables, with the SHA check.
    assert.match(
      trusted!,
      /protected pipeline #\d+ created\n {2}started by @trusted-mr-bot through the API \(source api\)/,
    );
    assert.match(trusted!, /^ {2}pipeline variables: none \(the project allows none: no_one_allowed/m);
    assert.doesNotMatch(transcript, /TRUSTED_[A-Z_]+=/);
    assert.match(trusted!, /^ {2}jobs: check-trusted-sha \(\.pre\), unit-tests \(test\), cloud-integration \(test\)$/m);
    assert.match(trusted!, /@maria {2}:thumbsup:/);
    assert.match(failed!, /commit status trusted-pipeline: failed/);
    assert.match(failed!, /Failed jobs: \[`cloud-integration`\]/);
    assert.match(failed!, /Tests: 42 total, 40 passed, 2 failed/);
    assert.match(stale!, /trusted pipelines for the new commit: 0/);
    assert.match(stale!, /\*\*Trust is stale\.\*\*.*\/-\/compare\/[0-9a-f]{40}\.\.\.[0-9a-f]{40}/);
    assert.match(retrusted!, /commit status trusted-pipeline: success/);
    assert.match(merged!, /^Maria comments `\/merge-trusted`/);
    assert.match(merged!, /MR !1 \[merged\]/);
    assert.match(merged!, /The trusted branch `trusted-fix-parser-mr1` was deleted/);
    assert.match(transcript, /Trusted pipelines: 2 \(one per trusted commit\)/);
  });
});
