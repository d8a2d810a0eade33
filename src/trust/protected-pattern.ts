/**
 * Which protected-branch rules can reach a trusted branch.
 *
 * GitLab matches a rule's name against a branch with `RefMatcher` (gitlabhq `app/models/ref_matcher.rb`): a name
 * without `*` matches only itself; otherwise every `*` becomes `.*?` in `\A...\z`, so it matches any run of
 * characters, `/` included, and everything else is literal and case-sensitive. Where several rules match one branch,
 * any rule that grants is enough (`ProtectedRef.protected_ref_accessible_to?`): the most permissive wins. So not only
 * the `trusted-*` rule guards the trusted branches but every rule that can match one of them (`*`, `trust*`,
 * `*-mr*`, an exact `trusted-feature-mr3`).
 */

/**
 * Whether rule name `pattern` matches at least one branch name that starts with `prefix`.
 *
 * Read the pattern as an automaton whose states are positions in it, a `*` looping on any character, and feed it the
 * prefix. If some state is still alive at the end of the prefix, a suffix completes the match: the rest of the
 * pattern's literals, every remaining `*` matching nothing. That happens when the pattern still has characters left
 * after consuming the whole prefix (`trusted-feature-mr3` for `trusted-`), or when a `*` was reached on the way (`*`,
 * `trust*`, `*-mr*`). If every state died, the pattern disagrees with the prefix at a literal (`main`, `release/*`,
 * `trusted_*`) and matches no trusted branch. It over-approximates only where the completing suffix would not be a
 * valid branch name, which errs on the safe side.
 */
export function matchesBranchWithPrefix(pattern: string, prefix: string): boolean {
  // RefMatcher#matches? is false for a blank name.
  if (pattern === "") return false;
  const p = [...pattern];
  /** Adds `i` and, since a `*` may match nothing, every position reachable from it over `*`s. */
  const close = (states: Set<number>, i: number) => {
    for (let j = i; j <= p.length && !states.has(j); j++) {
      states.add(j);
      if (p[j] !== "*") break;
    }
  };
  let states = new Set<number>();
  close(states, 0);
  for (const ch of prefix) {
    const next = new Set<number>();
    for (const i of states) {
      if (p[i] === "*") close(next, i);
      else if (p[i] === ch) close(next, i + 1);
    }
    if (next.size === 0) return false;
    states = next;
  }
  return true;
}
