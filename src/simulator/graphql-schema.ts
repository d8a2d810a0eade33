/**
 * GitLab's GraphQL schema, the subset the bot reads in one request: a pipeline's status, its jobs (trigger jobs
 * included) and its test report summary. Type, field, argument and enum names are GitLab's own, from
 * gitlabhq/gitlabhq `app/graphql/`: `types/project_type.rb`, `types/ci/pipeline_type.rb`, `types/ci/job_type.rb`
 * (`CiJob`), `types/ci/stage_type.rb` (`CiStage`), `types/ci/job_status_enum.rb` (`CiJobStatus`),
 * `types/ci/job_kind_enum.rb` (`CiJobKind`), `types/ci/pipeline_status_enum.rb`, `types/ci/test_report_summary_type.rb`,
 * `types/ci/test_report_total_type.rb`, `types/ci/test_suite_summary_type.rb`, `resolvers/ci/jobs_resolver.rb`,
 * `resolvers/ci/project_pipeline_resolver.rb`, `types/limited_countable_connection_type.rb`. Nullability follows
 * those files too (`status` of a job is nullable, `allowFailure` is not), so a client that works here copes with
 * GitLab's answer. Fields GitLab has and the bot does not read are left out: querying one is a validation error.
 */
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLError,
  GraphQLFloat,
  GraphQLID,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  type GraphQLOutputType,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
  Kind,
  type ValidationRule,
  type ValueNode,
} from "graphql";
import { testReportSummaryEntity } from "./entities.js";
import { versionAtLeast } from "./instance.js";
import { canReadProject } from "./permissions.js";
import { pipelineById, pipelinesForSha } from "./pipeline-index.js";
import { PIPELINE_STATUSES } from "./pipeline-status.js";
import type { PipelineRecord, ProjectRecord, SimState, UserRecord } from "./state.js";

/** What every resolver gets: the world and the caller (`undefined`: an anonymous request, which GitLab allows). */
export interface GraphqlContext {
  readonly state: SimState;
  readonly user: UserRecord | undefined;
}

const nonNull = <T extends GraphQLOutputType>(t: T) => new GraphQLNonNull(t);

// ---- scalars -------------------------------------------------------------------------------------------------

/**
 * `Types::GlobalIDType[Model]` (app/graphql/types/global_id_type.rb): `gid://gitlab/<Model>/<id>`. A malformed value
 * is "is not a valid Global ID", one of another model "does not represent an instance of <Model>"; both are
 * coercion errors, so the query fails validation.
 */
function globalIdScalar(name: string, models: readonly string[], description: string): GraphQLScalarType<string> {
  const coerce = (value: unknown): string => {
    const m = typeof value === "string" ? /^gid:\/\/gitlab\/([A-Za-z:]+)\/([^/]+)$/.exec(value) : null;
    if (!m) throw new GraphQLError(`${JSON.stringify(value)} is not a valid Global ID`);
    if (!models.includes(m[1] as string)) {
      throw new GraphQLError(`${JSON.stringify(value)} does not represent an instance of ${models[0]}`);
    }
    return value as string;
  };
  return new GraphQLScalarType<string>({
    name,
    description,
    serialize: (v) => String(v),
    parseValue: coerce,
    parseLiteral: (ast: ValueNode) => coerce(ast.kind === Kind.STRING ? ast.value : undefined),
  });
}

const CiPipelineID = globalIdScalar(
  "CiPipelineID",
  ["Ci::Pipeline"],
  'A `CiPipelineID` is a global ID. It is encoded as a string. An example `CiPipelineID` is: `"gid://gitlab/Ci::Pipeline/1"`.',
);

/** `Types::GlobalIDType[::CommitStatus].as('JobID')`: any row of `ci_builds`, named by its STI `type`. */
const JobID = globalIdScalar(
  "JobID",
  ["CommitStatus", "Ci::Build", "Ci::Bridge", "Ci::Processable", "GenericCommitStatus"],
  'A `CommitStatusID` is a global ID. It is encoded as a string. An example `CommitStatusID` is: `"gid://gitlab/CommitStatus/1"`.',
);

const modelId = (gid: string): string => gid.slice(gid.lastIndexOf("/") + 1);

// ---- enums ---------------------------------------------------------------------------------------------------

/**
 * `Ci::HasStatus::AVAILABLE_STATUSES`, which is also `Ci::Pipeline.all_state_names`: `CiJobStatus` and
 * `PipelineStatusEnum` are the same list, upcased, with the lower-case status as the value.
 */
const STATUSES = PIPELINE_STATUSES;

const statusValues = (what: string) =>
  Object.fromEntries(
    STATUSES.map((s) => [s.toUpperCase(), { value: s, description: `A ${what} that is ${s.replaceAll("_", " ")}.` }]),
  );

const PipelineStatusEnum = new GraphQLEnumType({ name: "PipelineStatusEnum", values: statusValues("pipeline") });
const CiJobStatus = new GraphQLEnumType({ name: "CiJobStatus", values: statusValues("job") });

/** The STI class of a `ci_builds` row; `CiJobKind` filters on it (`jobs.with_type(job_kind)`). */
type JobType = "Ci::Build" | "Ci::Bridge" | "GenericCommitStatus";

const CiJobKind = new GraphQLEnumType({
  name: "CiJobKind",
  values: {
    BUILD: { value: "Ci::Build", description: "Standard CI job." },
    BRIDGE: { value: "Ci::Bridge", description: "Bridge CI job connecting a parent and child pipeline." },
  },
});

// ---- connections ---------------------------------------------------------------------------------------------

/** GitLab's `default_max_page_size` (GitlabSchema): a page without `first`/`last`, or asking for more, has 100. */
const MAX_PAGE_SIZE = 100;

/** `LimitedCountableConnectionType::COUNT_LIMIT`. */
const COUNT_LIMIT = 1000;

interface ConnectionArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

interface Connection<T> {
  /** Every item the field's filters kept, for `count`. */
  readonly all: readonly T[];
  readonly edges: ReadonlyArray<{ cursor: string; node: T }>;
  readonly pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

/**
 * Where an item sits in its list, as a number that grows along the list, and the cursor that names it. Jobs are a
 * relation ordered by id desc, paged by GitLab's keyset connection (`Gitlab::Graphql::Pagination::Keyset`: the cursor
 * is base64 of `{"id":"<id>"}`); an array (test suites) by graphql-ruby's `ArrayConnection` (base64 of the 1-based
 * index). Both encode URL-safe without padding, as `GraphQL::Schema::Base64Encoder` does.
 */
interface Positioning<T> {
  position(item: T, index: number): number;
  cursor(item: T, index: number): string;
  /** The position a client's cursor names; `undefined` when it is not one of ours. */
  decode(cursor: string): number | undefined;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64url");
const unb64 = (s: string) => Buffer.from(s, "base64url").toString("utf8");

const byIdDesc: Positioning<{ id: number }> = {
  position: (item) => -item.id,
  cursor: (item) => b64(JSON.stringify({ id: String(item.id) })),
  decode: (cursor) => {
    try {
      const id = Number((JSON.parse(unb64(cursor)) as { id?: unknown }).id);
      return Number.isInteger(id) ? -id : undefined;
    } catch {
      return undefined;
    }
  },
};

const byIndex: Positioning<unknown> = {
  position: (_item, index) => index + 1,
  cursor: (_item, index) => b64(String(index + 1)),
  decode: (cursor) => {
    const n = Number(unb64(cursor));
    return Number.isInteger(n) ? n : undefined;
  },
};

function paginate<T>(all: readonly T[], args: ConnectionArgs, pos: Positioning<T>): Connection<T> {
  const decode = (cursor: string): number => {
    const p = pos.decode(cursor);
    // Gitlab::Graphql::Pagination::Keyset::Connection#ordered_items
    if (p === undefined) throw new GraphQLError("Please provide a valid cursor");
    return p;
  };
  const after = args.after == null ? undefined : decode(args.after);
  const before = args.before == null ? undefined : decode(args.before);
  const placed = all.map((node, index) => ({ node, index, at: pos.position(node, index) }));
  let start = after === undefined ? 0 : placed.findIndex((p) => p.at > after);
  if (start < 0) start = placed.length;
  let end = before === undefined ? placed.length : placed.findIndex((p) => p.at >= before);
  if (end < 0) end = placed.length;
  end = Math.max(start, end);
  const size = (n: number | null | undefined) => Math.min(Math.max(n ?? MAX_PAGE_SIZE, 0), MAX_PAGE_SIZE);
  if (args.first != null || args.last == null) end = Math.min(end, start + size(args.first));
  if (args.last != null) start = Math.max(start, end - size(args.last));
  const edges = placed.slice(start, end).map((p) => ({ cursor: pos.cursor(p.node, p.index), node: p.node }));
  return {
    all,
    edges,
    pageInfo: {
      hasNextPage: end < placed.length,
      hasPreviousPage: start > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

const connectionArgs = {
  after: { type: GraphQLString, description: "Returns the elements in the list that come after the specified cursor." },
  before: {
    type: GraphQLString,
    description: "Returns the elements in the list that come before the specified cursor.",
  },
  first: { type: GraphQLInt, description: "Returns the first _n_ elements from the list." },
  last: { type: GraphQLInt, description: "Returns the last _n_ elements from the list." },
};

const PageInfo = new GraphQLObjectType({
  name: "PageInfo",
  description: "Information about pagination in a connection.",
  fields: {
    endCursor: { type: GraphQLString },
    hasNextPage: { type: nonNull(GraphQLBoolean) },
    hasPreviousPage: { type: nonNull(GraphQLBoolean) },
    startCursor: { type: GraphQLString },
  },
});

/**
 * `<Node>Connection` and `<Node>Edge`. Job connections count with a limit (`Types::LimitedCountableConnectionType`:
 * `count(limit: Int = 1000)`, at most `limit + 1`); others count everything (`Types::CountableConnectionType`).
 */
function connectionType<T>(node: GraphQLObjectType<T, GraphqlContext>, o: { limitedCount: boolean }) {
  const edge = new GraphQLObjectType<{ cursor: string; node: T }, GraphqlContext>({
    name: `${node.name}Edge`,
    description: "An edge in a connection.",
    fields: { cursor: { type: nonNull(GraphQLString) }, node: { type: node } },
  });
  const count = o.limitedCount
    ? {
        type: nonNull(GraphQLInt),
        args: { limit: { type: GraphQLInt, defaultValue: COUNT_LIMIT } },
        resolve: (c: Connection<T>, { limit }: { limit: number }) => {
          // graphql-ruby's numericality validator on the argument.
          if (limit <= 0) throw new GraphQLError("limit must be greater than 0");
          if (limit > COUNT_LIMIT) throw new GraphQLError(`limit must be less than or equal to ${COUNT_LIMIT}`);
          return Math.min(c.all.length, limit + 1);
        },
      }
    : { type: nonNull(GraphQLInt), resolve: (c: Connection<T>) => c.all.length };
  return new GraphQLObjectType<Connection<T>, GraphqlContext>({
    name: `${node.name}Connection`,
    description: `The connection type for ${node.name}.`,
    fields: {
      count,
      edges: { type: new GraphQLList(edge), resolve: (c) => c.edges },
      nodes: { type: new GraphQLList(node), resolve: (c) => c.edges.map((e) => e.node) },
      pageInfo: { type: nonNull(PageInfo), resolve: (c) => c.pageInfo },
    },
  });
}

// ---- jobs ----------------------------------------------------------------------------------------------------

/** One row of `pipeline.statuses`: a build, a bridge (trigger job) or an external commit status. */
interface JobNode {
  readonly id: number;
  readonly type: JobType;
  readonly name: string;
  readonly status: string;
  readonly allowFailure: boolean;
  readonly retried: boolean;
  readonly stage: string;
  readonly project: ProjectRecord;
}

/**
 * `pipeline.statuses_order_id_desc` (resolvers/ci/jobs_resolver.rb): every `CommitStatus` of the pipeline, so
 * bridges and external commit statuses (`GenericCommitStatus`, stage `external`) too, unlike REST's `.../jobs`.
 * Both share one id sequence (state.ts), as rows of `ci_builds`.
 */
function pipelineStatuses(state: SimState, pipeline: PipelineRecord): JobNode[] {
  const project = state.project(pipeline.projectId);
  const jobs: JobNode[] = pipeline.jobs.map((j) => ({
    id: j.id,
    type: j.trigger === null ? "Ci::Build" : "Ci::Bridge",
    name: j.name,
    status: j.status,
    allowFailure: j.allowFailure,
    retried: j.retried,
    stage: j.stage,
    project,
  }));
  const external: JobNode[] = project.commitStatuses
    .filter((s) => s.pipelineId === pipeline.id)
    .map((s) => ({
      id: s.id,
      type: "GenericCommitStatus",
      name: s.name,
      status: s.status,
      allowFailure: s.allowFailure,
      retried: s.retried,
      stage: "external",
      project,
    }));
  return [...jobs, ...external].sort((a, b) => b.id - a.id);
}

/** `Types::Ci::StageType`; only the name is modelled (the simulator keeps no `ci_stages` rows). */
const CiStage = new GraphQLObjectType<{ name: string }, GraphqlContext>({
  name: "CiStage",
  fields: { name: { type: GraphQLString, description: "Name of the stage." } },
});

const CiJob = new GraphQLObjectType<JobNode, GraphqlContext>({
  name: "CiJob",
  fields: {
    allowFailure: { type: nonNull(GraphQLBoolean), description: "Whether the job is allowed to fail." },
    // JobType#id: `Gitlab::GlobalId.build(model_name: object.type || 'CommitStatus', id:)`.
    id: { type: JobID, description: "ID of the job.", resolve: (j) => `gid://gitlab/${j.type}/${j.id}` },
    // JobType#kind: `Ci::Bridge` is BRIDGE; anything else, a generic commit status included, is BUILD.
    kind: {
      type: nonNull(CiJobKind),
      description: "Indicates the type of job.",
      resolve: (j) => (j.type === "Ci::Bridge" ? "Ci::Bridge" : "Ci::Build"),
    },
    name: { type: GraphQLString, description: "Name of the job." },
    retried: { type: GraphQLBoolean, description: "Indicates that the job has been retried." },
    stage: { type: CiStage, description: "Stage of the job.", resolve: (j) => ({ name: j.stage }) },
    status: { type: CiJobStatus, description: "Status of the job." },
    // JobType#web_path: `project_job_path(object.project, object) unless object.is_a?(::Ci::Bridge)`: a bridge has
    // none (its downstream pipeline is in `detailedStatus.detailsPath`, not modelled).
    webPath: {
      type: GraphQLString,
      description: "Web path of the job.",
      resolve: (j) => (j.type === "Ci::Bridge" ? null : `/${j.project.pathWithNamespace}/-/jobs/${j.id}`),
    },
  },
});

const CiJobConnection = connectionType(CiJob, { limitedCount: true });

interface JobsArgs extends ConnectionArgs {
  statuses?: string[] | null;
  retried?: boolean | null;
  jobKind?: JobType | null;
}

// ---- test report summary ------------------------------------------------------------------------------------

/** The hash `TestReportSummarySerializer` renders; REST's `test_report_summary` serves the same one. */
interface TestReportSummaryJson {
  total: Record<"time" | "count" | "success" | "failed" | "skipped" | "error", number> & { suite_error: string | null };
  test_suites: Array<{
    name: string;
    total_time: number;
    total_count: number;
    success_count: number;
    failed_count: number;
    skipped_count: number;
    error_count: number;
    suite_error: string | null;
    build_ids: number[];
  }>;
}
type SuiteJson = TestReportSummaryJson["test_suites"][number];

const TestReportTotal = new GraphQLObjectType<TestReportSummaryJson["total"], GraphqlContext>({
  name: "TestReportTotal",
  description: "Total test report statistics.",
  fields: {
    count: { type: GraphQLInt, description: "Total number of the test cases." },
    error: { type: GraphQLInt, description: "Total number of test cases that had an error." },
    failed: { type: GraphQLInt, description: "Total number of test cases that failed." },
    skipped: { type: GraphQLInt, description: "Total number of test cases that were skipped." },
    success: { type: GraphQLInt, description: "Total number of test cases that succeeded." },
    suiteError: { type: GraphQLString, description: "Test suite error message.", resolve: (t) => t.suite_error },
    time: { type: GraphQLFloat, description: "Total duration of the tests." },
  },
});

const TestSuiteSummary = new GraphQLObjectType<SuiteJson, GraphqlContext>({
  name: "TestSuiteSummary",
  description: "Test suite summary in a pipeline test report.",
  fields: {
    buildIds: { type: new GraphQLList(GraphQLID), resolve: (s) => s.build_ids },
    errorCount: { type: GraphQLInt, resolve: (s) => s.error_count },
    failedCount: { type: GraphQLInt, resolve: (s) => s.failed_count },
    name: { type: GraphQLString },
    skippedCount: { type: GraphQLInt, resolve: (s) => s.skipped_count },
    successCount: { type: GraphQLInt, resolve: (s) => s.success_count },
    suiteError: { type: GraphQLString, resolve: (s) => s.suite_error },
    totalCount: { type: GraphQLInt, resolve: (s) => s.total_count },
    totalTime: { type: GraphQLFloat, resolve: (s) => s.total_time },
  },
});

const TestReportSummary = new GraphQLObjectType<TestReportSummaryJson, GraphqlContext>({
  name: "TestReportSummary",
  description: "Test report for a pipeline",
  fields: {
    testSuites: {
      type: nonNull(connectionType(TestSuiteSummary, { limitedCount: false })),
      description: "Test suites belonging to a pipeline test report.",
      args: connectionArgs,
      resolve: (r, args: ConnectionArgs) => paginate(r.test_suites, args, byIndex),
    },
    total: { type: nonNull(TestReportTotal), description: "Total report statistics for a pipeline test report." },
  },
});

// ---- pipeline and project ------------------------------------------------------------------------------------

const Pipeline = new GraphQLObjectType<PipelineRecord, GraphqlContext>({
  name: "Pipeline",
  fields: {
    // Types::BaseObject#id: the record's global id.
    id: {
      type: nonNull(GraphQLID),
      description: "ID of the pipeline.",
      resolve: (p) => `gid://gitlab/Ci::Pipeline/${p.id}`,
    },
    iid: { type: nonNull(GraphQLString), description: "Internal ID of the pipeline.", resolve: (p) => String(p.iid) },
    jobs: {
      type: CiJobConnection,
      description: "Jobs belonging to the pipeline.",
      args: {
        ...connectionArgs,
        jobKind: { type: CiJobKind, description: "Filter jobs by kind." },
        retried: { type: GraphQLBoolean, description: "Filter jobs by retry-status." },
        statuses: { type: new GraphQLList(new GraphQLNonNull(CiJobStatus)), description: "Filter jobs by status." },
      },
      // Resolvers::Ci::JobsResolver#resolve: `retried: false` is `jobs.latest`, `true` only the retried ones.
      resolve: (p, args: JobsArgs, ctx) => {
        let jobs = pipelineStatuses(ctx.state, p);
        if (args.retried === false) jobs = jobs.filter((j) => !j.retried);
        if (args.retried === true) jobs = jobs.filter((j) => j.retried);
        const statuses = args.statuses ?? [];
        if (statuses.length > 0) jobs = jobs.filter((j) => statuses.includes(j.status));
        if (args.jobKind) jobs = jobs.filter((j) => j.type === args.jobKind);
        return paginate(jobs, args, byIdDesc);
      },
    },
    path: {
      type: GraphQLString,
      description: "Relative path to the pipeline's page.",
      resolve: (p, _args, ctx) => `/${ctx.state.project(p.projectId).pathWithNamespace}/-/pipelines/${p.id}`,
    },
    ref: { type: GraphQLString, description: "Reference to the branch from which the pipeline was triggered." },
    sha: { type: GraphQLString, description: "SHA of the pipeline's commit." },
    status: { type: nonNull(PipelineStatusEnum), description: "Status of the pipeline." },
    testReportSummary: {
      type: nonNull(TestReportSummary),
      description: "Summary of the test report generated by the pipeline.",
      // Resolvers::Ci::TestReportSummaryResolver: the serializer REST's `test_report_summary` uses.
      resolve: (p) => testReportSummaryEntity(p) as unknown as TestReportSummaryJson,
    },
  },
});

interface PipelineArgs {
  id?: string | null;
  iid?: string | null;
  sha?: string | null;
}

/**
 * Resolvers::Ci::ProjectPipelineResolver, through `Ci::PipelinesFinder` scoped to the project: a pipeline of
 * another project is null. With `sha`, the finder lists newest first and its batch loader keeps the last it is
 * given, so the oldest pipeline for the commit wins (*inferred* from that code, not observed). Without arguments,
 * `project.last_pipeline`: the newest for the default branch's head.
 */
function projectPipeline(project: ProjectRecord, args: PipelineArgs): PipelineRecord | null {
  const given = (["id", "iid", "sha"] as const).filter((k) => args[k] != null);
  // `validates mutually_exclusive: [:id, :iid, :sha]`; graphql-ruby's wording is *inferred*.
  if (given.length > 1) throw new GraphQLError("Only one of [id, iid, sha] arguments is allowed at the same time.");
  if (args.id != null) {
    const id = Number(modelId(args.id));
    return (Number.isInteger(id) && pipelineById(project.pipelines, id)) || null;
  }
  if (args.iid != null) return project.pipelines.find((p) => String(p.iid) === String(args.iid)) ?? null;
  if (args.sha != null) return pipelinesForSha(project.pipelines, args.sha)[0] ?? null;
  const head = project.branches.get(project.defaultBranch);
  return head === undefined ? null : (pipelinesForSha(project.pipelines, head).at(-1) ?? null);
}

const Project = new GraphQLObjectType<ProjectRecord, GraphqlContext>({
  name: "Project",
  fields: {
    fullPath: {
      type: nonNull(GraphQLID),
      description: "Full path of the project.",
      resolve: (p) => p.pathWithNamespace,
    },
    id: { type: nonNull(GraphQLID), description: "ID of the project.", resolve: (p) => `gid://gitlab/Project/${p.id}` },
    pipeline: {
      type: Pipeline,
      description: "Pipeline of the project.",
      args: {
        id: {
          type: CiPipelineID,
          description: 'Global ID of the Pipeline. For example, "gid://gitlab/Ci::Pipeline/314".',
        },
        iid: { type: GraphQLID, description: 'IID of the Pipeline. For example, "1".' },
        sha: { type: GraphQLString, description: "SHA of the Pipeline." },
      },
      resolve: (project, args: PipelineArgs) => projectPipeline(project, args),
    },
  },
});

/** `read_project`: an anonymous caller sees public projects only; a signed-in one what `canReadProject` allows. */
function readable(ctx: GraphqlContext, project: ProjectRecord): boolean {
  return ctx.user ? canReadProject(ctx.state, ctx.user.id, project) : project.visibility === "public";
}

export const gitlabSchema = new GraphQLSchema({
  query: new GraphQLObjectType<unknown, GraphqlContext>({
    name: "Query",
    fields: {
      // Resolvers::ProjectResolver + `authorize :read_project` on ProjectType: unknown and unreadable are both null.
      project: {
        type: Project,
        description: "Find a project.",
        args: {
          fullPath: {
            type: nonNull(GraphQLID),
            description: "Full path of the project. For example, `gitlab-org/gitlab-foss`.",
          },
        },
        resolve: (_root, { fullPath }: { fullPath: string }, ctx) => {
          const project = ctx.state.projectByPath(fullPath);
          return project && readable(ctx, project) ? project : null;
        },
      },
    },
  }),
});

/**
 * `Project.pipeline(id:)` arrived with gitlab-org/gitlab!147168 ("GraphQL: Allow to request pipelines by id");
 * before it the resolver took `iid` and `sha` only. Its release, 16.11, is *inferred* from the MR's date (March
 * 2024). graphql-ruby answers an argument a field does not declare with HTTP 200 and an `errors` entry in its own
 * words (`StaticValidation::ArgumentsAreDefined`, code `argumentNotAccepted`).
 */
const pipelineWithoutId: ValidationRule = (context) => ({
  Argument(node) {
    if (node.name.value !== "id" || context.getParentType()?.name !== "Project") return;
    if (context.getFieldDef()?.name !== "pipeline") return;
    context.reportError(
      new GraphQLError("Field 'pipeline' doesn't accept argument 'id'", {
        nodes: node,
        extensions: { code: "argumentNotAccepted", name: "pipeline", typeName: "Field", argumentName: "id" },
      }),
    );
  },
});

/** Validation rules beyond the schema's for an instance of `version`: what an older GitLab's schema did not have. */
export function versionRules(version: string): ValidationRule[] {
  return versionAtLeast(version, 16, 11) ? [] : [pipelineWithoutId];
}
