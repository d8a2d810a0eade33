/**
 * A `@gitbeaker/rest` client wired like the GitLab adapter's: gitbeaker's resources over the adapter's requester
 * (`src/gitlab/requester.ts`), which lets a 429 reach the caller with its headers instead of retrying it inside
 * gitbeaker for ~256 ms regardless of `Retry-After` (FACTS.md, "Rate limits").
 */
import { GitbeakerRequestError, Gitlab } from "@gitbeaker/rest";
import { createRequesterFn } from "../../src/gitlab/requester.js";

export function gitlabClient(host: string, token: string): InstanceType<typeof Gitlab<false>> {
  const requesterFn = createRequesterFn({
    onCall: () => undefined,
    requestError: (description, cause) => new GitbeakerRequestError(description, { cause }),
  });
  return new Gitlab({
    host,
    token,
    // gitbeaker types requesterFn against its internal RequesterType; the adapter casts the same way.
    requesterFn: requesterFn as unknown as ConstructorParameters<typeof Gitlab>[0]["requesterFn"],
  });
}
