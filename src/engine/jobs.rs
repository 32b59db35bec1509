//! Jobs for stand-in nodes: deterministic generation and rendering per dialect.
//!
//! The shapes follow `ges-api.md` §2.2–§2.4 and the fixtures in
//! `/work/shared/fixtures`; the ID formats follow §6. Job JSON is compact and
//! its strings are escaped exactly as serde_json escapes them (it is written
//! by a small writer that is much faster in debug builds, see `json.rs`).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::json::{array_of_one, ObjectWriter};
use super::{Dialect, StoredJob};

/// Suffix of generated memory-edition IDs (seen in the docs' list example).
const MEMORY_SUFFIX_GENERATED: &str = "001680206";
/// Suffix of memory-edition IDs handed out for submitted jobs.
const MEMORY_SUFFIX_SUBMITTED: &str = "016886200";
/// Suffix of generated persistence-edition IDs (seen in the docs).
const PERSISTENCE_SUFFIX_GENERATED: &str = "0000382489090";
/// Suffix of persistence-edition IDs handed out for submitted jobs (14 digits, also seen).
const PERSISTENCE_SUFFIX_SUBMITTED: &str = "00003824890901";
/// Numeric prefix of generated legacy IDs (seen in the docs).
const LEGACY_PREFIX_GENERATED: &str = "6258216312399194368";
/// Numeric prefix of legacy IDs handed out for submitted jobs.
const LEGACY_PREFIX_SUBMITTED: &str = "6258216312399194369";

/// The first input word of the ID permutation for submitted jobs.
const SUBMITTED_TAG: u64 = 0x5ab0_0000_0000_0001;

/// The project ID in generated persistence URLs (the docs' example project).
const PERSISTENCE_PROJECT: &str = "854d9316e71d4dc599c5f27ea323d445";
/// The project ID in legacy URLs (the docs' example project).
const LEGACY_PROJECT: &str = "10001";

/// The newest generated memory-edition start time: 2024-06-03 17:34:56 (UTC).
const NEWEST_START: i64 = 1_717_436_096;
/// Generated start times spread over about this many seconds before `NEWEST_START`.
const START_SPAN: i64 = 3 * 86_400;

const ALGORITHMS: [&str; 8] = [
    "pagerank",
    "shortest_path",
    "k_hop",
    "louvain",
    "connected_component",
    "label_propagation",
    "personalrank",
    "kcore",
];

/// A vertex ID that needs escaping, used now and then so consumers see one.
const AWKWARD_VERTEX: &str = "Zoë \"the\" ✓\\n/\u{1}";

/// The `rawRequest` of jobs made by [`memory_job`].
const MEMORY_JOB_REQUEST: &str = r#"{"algorithmName":"pagerank","parameters":{"alpha":0.85}}"#;

/// Generates `count` jobs of `dialect` for `graph`, deterministically from `seed`.
///
/// IDs are unique within a call and across seeds (they encode `seed` and the
/// index through a permutation), so nodes of one cluster should get
/// different seeds. The memory edition gets a realistic mix: about 5 %
/// pending (empty `startTime`), 5 % running, 10 % failed (with `failReason`)
/// and 10 % `ImportGraph` jobs (with `files`). Its start times lie in 2024,
/// mostly descending but with equal seconds and some local disorder, so
/// consumers cannot assume sorted input. About 1 % of algorithm requests
/// carry a vertex ID that needs escaping (quotes, backslash, control and
/// non-ASCII characters).
pub fn generate(dialect: Dialect, count: usize, seed: u64, graph: &str) -> Vec<StoredJob> {
    let mut rng = SplitMix64(seed);
    match dialect {
        Dialect::Memory => {
            let starts = start_times(count, &mut rng);
            starts
                .into_iter()
                .enumerate()
                .map(|(i, start)| generated_memory_job(seed, i, start, graph, &mut rng))
                .collect()
        }
        Dialect::Persistence => (0..count)
            .map(|i| generated_persistence_job(seed, i, graph, &mut rng))
            .collect(),
        Dialect::Legacy => (0..count)
            .map(|i| generated_legacy_job(seed, i, graph, &mut rng))
            .collect(),
    }
}

/// A memory-edition `Algorithm` job; `start_time` `None` renders `"startTime":""`
/// (not started).
///
/// `endTime` equals the start time for finished statuses (`success`,
/// `complete`, `failed`, `partiallyFailed`) and is `""` otherwise; `failed`
/// jobs get a `failReason`.
pub fn memory_job(id: &str, start_time: Option<&str>, status: &str) -> StoredJob {
    let start = Time::Text(start_time.unwrap_or_default());
    render_memory_job(id, start, status)
}

/// Like [`memory_job`], with `startTime` given as any JSON value (number,
/// string, …) because the docs allow "a date string or a timestamp".
pub fn memory_job_with_start(id: &str, start: Value, status: &str) -> StoredJob {
    let start = serde_json::to_vec(&start).expect("a JSON value must serialize");
    render_memory_job(id, Time::Json(&start), status)
}

/// A persistence-edition job running `command` (e.g. `import_graph`,
/// `batch_build_index`) on `graph`, with a matching `url` and `rawRequest`.
pub fn persistence_job(id: &str, status: &str, command: &str, graph: &str) -> StoredJob {
    let url = persistence_url(PERSISTENCE_PROJECT, graph, command);
    let raw_request = persistence_raw_request(command, graph, 0);
    render_persistence(id, status, command, &url, &raw_request)
}

/// A legacy `import_graph` job on `graph` with a `request.body` object.
pub fn legacy_job(id: &str, status: &str, graph: &str) -> StoredJob {
    let url = format!("/ges/v1.0/{LEGACY_PROJECT}/graphs/{graph}/action?action_id=import-graph");
    render_legacy(id, status, "import_graph", &url, &import_body(0))
}

/// The ID a node of `dialect` hands out for its `seq`-th submitted job.
///
/// Deterministic and one-to-one in `seq`; never equal to a [`generate`]d ID
/// (the suffix or prefix differs).
pub fn new_job_id(dialect: Dialect, seq: u64) -> String {
    let (hi, lo) = permute(SUBMITTED_TAG, seq);
    match dialect {
        Dialect::Memory => format!("{}{MEMORY_SUFFIX_SUBMITTED}", uuid(hi, lo)),
        Dialect::Persistence => format!("{hi:016x}{lo:016x}{PERSISTENCE_SUFFIX_SUBMITTED}"),
        Dialect::Legacy => format!("{LEGACY_PREFIX_SUBMITTED}{}", uuid(hi, lo)),
    }
}

/// Renders a job-list body of `dialect` by splicing the jobs' stored JSON.
///
/// Persistence: `{"jobs":[…],"totalCount":N,"result":"success"}` with `N` the
/// number of jobs in this body (the docs' example fits both readings; this
/// stand-in picks "returned"). Memory and legacy: `{"jobs":[…],"result":"success"}`.
pub fn render_list<'a, I>(dialect: Dialect, jobs: I) -> Bytes
where
    I: IntoIterator<Item = &'a StoredJob>,
    I::IntoIter: Clone,
{
    let jobs = jobs.into_iter();
    let (count, bytes) = jobs
        .clone()
        .fold((0usize, 0usize), |(n, b), job| (n + 1, b + job.json.len()));

    let mut body = Vec::with_capacity(bytes + count + 64);
    body.extend_from_slice(b"{\"jobs\":[");
    for (i, job) in jobs.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&job.json);
    }
    body.push(b']');
    if dialect == Dialect::Persistence {
        body.extend_from_slice(format!(",\"totalCount\":{count}").as_bytes());
    }
    body.extend_from_slice(b",\"result\":\"success\"}");
    Bytes::from(body)
}

/// What a node needs to render a job submitted through its API.
pub(crate) struct Submission<'a> {
    /// The memory edition's `taskType`.
    pub(crate) task_type: &'a str,
    /// The persistence and legacy `request.command`.
    pub(crate) command: &'a str,
    /// Path and query of the submitting request.
    pub(crate) url: &'a str,
    /// The submitting request's body.
    pub(crate) raw_request: &'a str,
    /// Submission time, seconds since the Unix epoch (UTC).
    pub(crate) now: i64,
}

/// A freshly submitted, `running` job.
pub(crate) fn submitted_job(dialect: Dialect, id: &str, sub: &Submission<'_>) -> StoredJob {
    match dialect {
        Dialect::Memory => render_memory(&MemoryFields {
            id,
            raw_request: sub.raw_request,
            task_type: sub.task_type,
            can_stop: true,
            progress: "0",
            start_time: Time::Text(&format_time(sub.now)),
            fail_reason: None,
            end_time: Time::Text(""),
            status: "running",
            files: None,
        }),
        Dialect::Persistence => {
            render_persistence(id, "running", sub.command, sub.url, sub.raw_request)
        }
        Dialect::Legacy => {
            // Legacy lists show the body as an object; a body that is not a
            // JSON object shows as `{}`.
            let body = serde_json::from_str::<Value>(sub.raw_request)
                .ok()
                .filter(Value::is_object)
                .and_then(|body| serde_json::to_vec(&body).ok())
                .unwrap_or_else(|| b"{}".to_vec());
            render_legacy(id, "running", sub.command, sub.url, &body)
        }
    }
}

/// The `status` of a stored job's JSON; `running` when it has none.
pub(crate) fn job_status(json: &[u8]) -> String {
    #[derive(Deserialize)]
    struct StatusOnly {
        status: Option<String>,
    }
    serde_json::from_slice::<StatusOnly>(json)
        .ok()
        .and_then(|job| job.status)
        .unwrap_or_else(|| "running".to_owned())
}

/// Formats seconds since the Unix epoch as `yyyy-MM-dd HH:mm:ss` (UTC).
pub(crate) fn format_time(secs: i64) -> String {
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));

    // Howard Hinnant's civil-from-days: days since 1970-01-01 → (y, m, d).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);

    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60,
        secs_of_day % 60
    )
}

/// The members of a memory-edition job, in the order of the docs' example.
struct MemoryFields<'a> {
    id: &'a str,
    raw_request: &'a str,
    task_type: &'a str,
    can_stop: bool,
    progress: &'a str,
    start_time: Time<'a>,
    fail_reason: Option<&'a str>,
    end_time: Time<'a>,
    status: &'a str,
    /// Rendered JSON.
    files: Option<&'a [u8]>,
}

/// A `startTime`/`endTime` value.
#[derive(Clone, Copy)]
enum Time<'a> {
    Text(&'a str),
    /// Rendered JSON.
    Json(&'a [u8]),
}

/// SplitMix64: a tiny, good-enough PRNG for test data.
struct SplitMix64(u64);

// === impl SplitMix64 ===

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..n` (the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or_default();
        items.get(i).copied().unwrap_or_default()
    }
}

// === impl Time ===

impl Time<'_> {
    fn write(self, obj: &mut ObjectWriter, key: &str) {
        match self {
            Time::Text(text) => obj.string(key, text),
            Time::Json(json) => obj.raw(key, json),
        };
    }
}

fn generated_memory_job(
    seed: u64,
    index: usize,
    start: i64,
    graph: &str,
    rng: &mut SplitMix64,
) -> StoredJob {
    let (hi, lo) = permute(seed ^ mix(1), index as u64);
    let id = format!("{}{MEMORY_SUFFIX_GENERATED}", uuid(hi, lo));

    let status = match rng.below(100) {
        0..=4 => "pending",
        5..=9 => "running",
        10..=19 => "failed",
        _ => "success",
    };
    let import = rng.percent(10);
    let progress = match status {
        "pending" => "0".to_owned(),
        "running" => (1 + rng.below(99)).to_string(),
        "failed" => rng.below(101).to_string(),
        _ => "100".to_owned(),
    };
    let start_time = if status == "pending" {
        String::new()
    } else {
        format_time(start)
    };
    let end_time = if matches!(status, "pending" | "running") {
        String::new()
    } else {
        format_time(start + i64::try_from(rng.below(600)).unwrap_or_default())
    };

    let (task_type, raw_request, fail_reason, files);
    if import {
        let edges = format!("/data/edges-{index}.csv");
        task_type = "ImportGraph";
        raw_request = if rng.percent(50) {
            String::new()
        } else {
            let mut req = ObjectWriter::with_capacity(160);
            req.string("graphName", graph)
                .string("edgesetPath", &edges)
                .string("vertexsetPath", &format!("/data/vertices-{index}.csv"))
                .string("delimiter", ",")
                .raw("parallelEdge", br#"{"action":"allow"}"#);
            into_string(req.finish())
        };
        fail_reason = format!("Import graph error: file {edges} does not exist");
        let mut file = ObjectWriter::with_capacity(48);
        file.string("fileName", &edges);
        let mut entry = ObjectWriter::with_capacity(64);
        entry.raw("edgeFiles", &array_of_one(&file.finish()));
        files = Some(array_of_one(&entry.finish()));
    } else {
        let algorithm = rng.pick(&ALGORITHMS);
        let source = if rng.percent(1) {
            AWKWARD_VERTEX.to_owned()
        } else {
            rng.below(10_000).to_string()
        };
        let mut parameters = ObjectWriter::with_capacity(48);
        parameters
            .string("source", &source)
            .string("target", &rng.below(10_000).to_string());
        let mut req = ObjectWriter::with_capacity(96);
        req.string("algorithmName", algorithm)
            .raw("parameters", &parameters.finish());
        task_type = "Algorithm";
        raw_request = into_string(req.finish());
        fail_reason =
            format!("Running algorithm [{algorithm}] error: parameter [source] is invalid!");
        files = None;
    }

    render_memory(&MemoryFields {
        id: &id,
        raw_request: &raw_request,
        task_type,
        can_stop: !import && matches!(status, "pending" | "running"),
        progress: &progress,
        start_time: Time::Text(&start_time),
        fail_reason: (status == "failed").then_some(fail_reason.as_str()),
        end_time: Time::Text(&end_time),
        status,
        files: files.as_deref(),
    })
}

fn generated_persistence_job(
    seed: u64,
    index: usize,
    graph: &str,
    rng: &mut SplitMix64,
) -> StoredJob {
    let (hi, lo) = permute(seed ^ mix(2), index as u64);
    let id = format!("{hi:016x}{lo:016x}{PERSISTENCE_SUFFIX_GENERATED}");

    let status = match rng.below(100) {
        0..=4 => "pending",
        5..=11 => "running",
        12..=19 => "failed",
        20..=29 => "complete",
        _ => "success",
    };
    let command = match rng.below(100) {
        0..=34 => "import_graph",
        35..=44 => "batch_build_index",
        45..=84 => "execute_algorithm",
        _ => "execute_cypher_query",
    };
    let url = persistence_url(PERSISTENCE_PROJECT, graph, command);
    let raw_request = persistence_raw_request(command, graph, index);
    render_persistence(&id, status, command, &url, &raw_request)
}

fn generated_legacy_job(seed: u64, index: usize, graph: &str, rng: &mut SplitMix64) -> StoredJob {
    let (hi, lo) = permute(seed ^ mix(3), index as u64);
    let id = format!("{LEGACY_PREFIX_GENERATED}{}", uuid(hi, lo));

    let status = match rng.below(100) {
        0..=9 => "pending",
        10..=19 => "running",
        _ => "complete",
    };
    let url = format!("/ges/v1.0/{LEGACY_PROJECT}/graphs/{graph}/action?action_id=import-graph");
    render_legacy(&id, status, "import_graph", &url, &import_body(index))
}

/// Start times for `count` memory jobs: descending overall, with equal seconds
/// (about 15 % of steps are zero) and about 3 % of jobs swapped with a
/// neighbour up to three places earlier.
fn start_times(count: usize, rng: &mut SplitMix64) -> Vec<i64> {
    let jobs = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
    let average_step = u64::try_from((START_SPAN / jobs).clamp(1, 3_600)).unwrap_or(1);

    let mut times = Vec::with_capacity(count);
    let mut t = NEWEST_START;
    for i in 0..count {
        if i > 0 && !rng.percent(15) {
            t -= i64::try_from(1 + rng.below(2 * average_step)).unwrap_or(1);
        }
        times.push(t);
    }

    for i in 1..count {
        if rng.percent(3) {
            let back = usize::try_from(1 + rng.below(3)).unwrap_or(1);
            times.swap(i, i.saturating_sub(back));
        }
    }
    times
}

fn render_memory_job(id: &str, start: Time<'_>, status: &str) -> StoredJob {
    let finished = is_finished(status);
    render_memory(&MemoryFields {
        id,
        raw_request: MEMORY_JOB_REQUEST,
        task_type: "Algorithm",
        can_stop: !finished,
        progress: if finished { "100" } else { "0" },
        start_time: start,
        fail_reason: (status == "failed")
            .then_some("Running algorithm [pagerank] error: the job failed"),
        end_time: if finished { start } else { Time::Text("") },
        status,
        files: None,
    })
}

fn render_memory(job: &MemoryFields<'_>) -> StoredJob {
    let mut obj = ObjectWriter::with_capacity(256 + job.raw_request.len());
    obj.string("jobId", job.id)
        .string("rawRequest", job.raw_request)
        .string("taskType", job.task_type)
        .boolean("canStop", job.can_stop)
        .string("progress", job.progress);
    job.start_time.write(&mut obj, "startTime");
    if let Some(reason) = job.fail_reason {
        obj.string("failReason", reason);
    }
    job.end_time.write(&mut obj, "endTime");
    obj.string("status", job.status);
    if let Some(files) = job.files {
        obj.raw("files", files);
    }
    stored(job.id, obj)
}

fn render_persistence(
    id: &str,
    status: &str,
    command: &str,
    url: &str,
    raw_request: &str,
) -> StoredJob {
    let mut request = ObjectWriter::with_capacity(64 + url.len() + raw_request.len() * 5 / 4);
    request
        .string("command", command)
        .string("url", url)
        .string("rawRequest", raw_request);
    let request = request.finish();

    let mut obj = ObjectWriter::with_capacity(64 + request.len());
    obj.string("jobId", id)
        .string("status", status)
        .raw("request", &request);
    stored(id, obj)
}

/// A legacy job; `body` is rendered JSON.
fn render_legacy(id: &str, status: &str, command: &str, url: &str, body: &[u8]) -> StoredJob {
    let mut request = ObjectWriter::with_capacity(64 + url.len() + body.len());
    request
        .string("command", command)
        .string("url", url)
        .raw("body", body);
    let request = request.finish();

    let mut obj = ObjectWriter::with_capacity(96 + request.len());
    obj.string("jobId", id)
        .string("status", status)
        .raw("request", &request);
    stored(id, obj)
}

fn stored(id: &str, obj: ObjectWriter) -> StoredJob {
    StoredJob {
        id: id.to_owned(),
        json: Bytes::from(obj.finish()),
    }
}

fn into_string(json: Vec<u8>) -> String {
    // The writer only ever appends whole UTF-8 sequences and ASCII.
    String::from_utf8(json).expect("rendered JSON must be UTF-8")
}

fn persistence_url(project: &str, graph: &str, command: &str) -> String {
    let base = format!("/ges/v1.0/{project}/graphs/{graph}");
    match command {
        "batch_build_index" => {
            format!("{base}/indices/action?action_id=batch-build&targetGraphName={graph}")
        }
        other => format!("{base}/action?action_id={}", other.replace('_', "-")),
    }
}

fn persistence_raw_request(command: &str, graph: &str, index: usize) -> String {
    let mut req = ObjectWriter::with_capacity(160);
    match command {
        "import_graph" => {
            req.string("graphName", graph)
                .boolean("offline", false)
                .string("edgesetPath", &format!("/user/GES/data/edges-{index}.csv"))
                .string(
                    "vertexsetPath",
                    &format!("/user/GES/data/vertices-{index}.csv"),
                );
        }
        "batch_build_index" => {
            let mut index_spec = ObjectWriter::with_capacity(128);
            index_spec
                .string("indexType", "GlobalCompositeEdgeIndex")
                .string("indexName", &format!("edge_index_{index}"))
                .raw("indexProperty", b"[]")
                .boolean("hasLabel", true);
            req.raw("indices", &array_of_one(&index_spec.finish()));
        }
        "execute_cypher_query" => {
            req.raw(
                "statements",
                br#"[{"statement":"match (n) return count(n)","executionMode":"async"}]"#,
            );
        }
        _ => {
            let parameters = format!(
                r#"{{"alpha":0.85,"convergence":0.00001,"max_iterations":{}}}"#,
                1_000 + index
            );
            req.string("algorithmName", "pagerank")
                .raw("parameters", parameters.as_bytes());
        }
    }
    into_string(req.finish())
}

/// The rendered `request.body` of a legacy import job.
fn import_body(index: usize) -> Vec<u8> {
    let mut body = ObjectWriter::with_capacity(200);
    body.string(
        "edgesetPath",
        &format!("file:///root/ges-install/auDatas/ranking_edge-{index}.csv"),
    )
    .string(
        "vertexsetPath",
        "file:///root/ges-install/auDatas/movies_vertex_new.csv",
    )
    .string(
        "schemaPath",
        "file:///root/ges-install/auDatas/schema_aikv.xml",
    );
    body.finish()
}

fn is_finished(status: &str) -> bool {
    matches!(
        status,
        "success" | "complete" | "failed" | "partiallyFailed"
    )
}

/// UUID layout (8-4-4-4-12) of 128 bits.
fn uuid(hi: u64, lo: u64) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// A permutation of 128-bit values (three Feistel rounds over two words), so
/// distinct `(a, b)` pairs always give distinct, random-looking outputs.
fn permute(a: u64, b: u64) -> (u64, u64) {
    let (mut x, mut y) = (a, b);
    y ^= mix(x ^ 0x243f_6a88_85a3_08d3);
    x ^= mix(y ^ 0x1319_8a2e_0370_7344);
    y ^= mix(x ^ 0xa409_3822_299f_31d0);
    (x, y)
}

/// The SplitMix64 finaliser (a bijection on `u64`).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn parse(job: &StoredJob) -> Value {
        serde_json::from_slice(&job.json).expect("a stored job must be valid JSON")
    }

    fn is_hex(s: &str) -> bool {
        s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    fn is_uuid(s: &str) -> bool {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    is_hex(&c.to_string())
                }
            })
    }

    fn assert_memory_id(id: &str) {
        assert_eq!(id.len(), 45, "{id}");
        assert!(is_uuid(&id[..36]), "{id}");
        assert!(id[36..].bytes().all(|b| b.is_ascii_digit()), "{id}");
    }

    fn assert_persistence_id(id: &str) {
        assert!(is_hex(&id[..32]), "{id}");
        assert!(id[32..].bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert!((45..=46).contains(&id.len()), "{id}");
    }

    fn assert_legacy_id(id: &str) {
        assert_eq!(id.len(), 55, "{id}");
        assert!(id[..19].bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert!(is_uuid(&id[19..]), "{id}");
    }

    #[test]
    fn ids_have_the_documented_formats() {
        for job in generate(Dialect::Memory, 50, 1, "movies") {
            assert_memory_id(&job.id);
            assert!(job.id.ends_with(MEMORY_SUFFIX_GENERATED));
        }
        for job in generate(Dialect::Persistence, 50, 1, "movies") {
            assert_persistence_id(&job.id);
            assert!(job.id.ends_with(PERSISTENCE_SUFFIX_GENERATED));
        }
        for job in generate(Dialect::Legacy, 50, 1, "movies") {
            assert_legacy_id(&job.id);
        }
        assert_memory_id(&new_job_id(Dialect::Memory, 7));
        assert_persistence_id(&new_job_id(Dialect::Persistence, 7));
        assert_legacy_id(&new_job_id(Dialect::Legacy, 7));
    }

    #[test]
    fn new_job_ids_are_deterministic_and_distinct() {
        for dialect in [Dialect::Memory, Dialect::Persistence, Dialect::Legacy] {
            assert_eq!(new_job_id(dialect, 42), new_job_id(dialect, 42));
            let ids: HashSet<String> = (0..10_000).map(|seq| new_job_id(dialect, seq)).collect();
            assert_eq!(ids.len(), 10_000);
            let generated = generate(dialect, 1_000, 0, "movies");
            assert!(generated.iter().all(|job| !ids.contains(&job.id)));
        }
    }

    #[test]
    fn generate_is_deterministic_and_unique_across_seeds() {
        for dialect in [Dialect::Memory, Dialect::Persistence, Dialect::Legacy] {
            let a = generate(dialect, 2_000, 7, "movies");
            let again = generate(dialect, 2_000, 7, "movies");
            let b = generate(dialect, 2_000, 8, "movies");
            assert_eq!(a.len(), 2_000);
            assert!(a
                .iter()
                .zip(&again)
                .all(|(x, y)| x.id == y.id && x.json == y.json));

            let ids: HashSet<&str> = a.iter().chain(&b).map(|job| job.id.as_str()).collect();
            assert_eq!(
                ids.len(),
                4_000,
                "{dialect}: IDs must be unique within and across seeds"
            );
        }
        assert!(generate(Dialect::Memory, 0, 1, "movies").is_empty());
    }

    #[test]
    fn jobs_are_compact_json_objects_carrying_their_id() {
        for dialect in [Dialect::Memory, Dialect::Persistence, Dialect::Legacy] {
            for job in generate(dialect, 500, 3, "movies") {
                let value = parse(&job);
                assert_eq!(value["jobId"], job.id.as_str());
                assert!(value["status"].is_string());
                let compact = serde_json::to_vec(&value).expect("a JSON value must serialize");
                assert_eq!(
                    compact.len(),
                    job.json.len(),
                    "{dialect}: job JSON must be compact"
                );
                assert!(!job.json.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn memory_jobs_mix_statuses_types_and_unsorted_times() {
        let jobs: Vec<Value> = generate(Dialect::Memory, 10_000, 11, "movies")
            .iter()
            .map(parse)
            .collect();
        let count = |f: &dyn Fn(&Value) -> bool| jobs.iter().filter(|j| f(j)).count();

        let pending = count(&|j| j["startTime"] == "");
        let failed = count(&|j| j["status"] == "failed");
        let imports = count(&|j| j["taskType"] == "ImportGraph");
        assert!(
            (300..=800).contains(&pending),
            "about 5 % pending, got {pending}"
        );
        assert!(
            (700..=1_300).contains(&failed),
            "about 10 % failed, got {failed}"
        );
        assert!(
            (700..=1_300).contains(&imports),
            "about 10 % ImportGraph, got {imports}"
        );
        assert_eq!(count(&|j| j.get("failReason").is_some()), failed);
        assert_eq!(count(&|j| j.get("files").is_some()), imports);
        assert!(jobs
            .iter()
            .all(|j| j["progress"].is_string() && j["canStop"].is_boolean()));
        assert!(jobs.iter().all(|j| j["rawRequest"].is_string()));
        assert!(
            count(&|j| j["rawRequest"]
                .as_str()
                .is_some_and(|r| r.contains('"') && r.contains('✓')))
                > 0
        );

        let starts: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j["startTime"].as_str())
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            starts
                .iter()
                .all(|s| s.len() == 19 && s.starts_with("2024-")),
            "times must be yyyy-MM-dd HH:mm:ss in 2024"
        );
        let pairs = starts.windows(2);
        let equal = pairs.clone().filter(|w| w[0] == w[1]).count();
        let rising = pairs.filter(|w| w[0] < w[1]).count();
        assert!(
            equal > 100,
            "some start times must share a second, got {equal}"
        );
        assert!(
            rising > 50,
            "some start times must be out of order, got {rising}"
        );
        assert!(
            starts.first() > starts.last(),
            "start times must descend overall"
        );
        for job in &jobs {
            let (start, end) = (job["startTime"].as_str(), job["endTime"].as_str());
            if job["status"] == "success" {
                assert!(end >= start, "a job must not end before it starts: {job}");
            }
        }
    }

    #[test]
    fn persistence_and_legacy_jobs_have_requests() {
        for job in generate(Dialect::Persistence, 200, 5, "g1") {
            let value = parse(&job);
            let request = &value["request"];
            assert!(request["command"].is_string());
            assert!(request["url"]
                .as_str()
                .is_some_and(|url| url.contains("/graphs/g1/")));
            assert!(request["rawRequest"]
                .as_str()
                .is_some_and(|raw| serde_json::from_str::<Value>(raw).is_ok()));
        }
        for job in generate(Dialect::Legacy, 200, 5, "g1") {
            let value = parse(&job);
            assert!(["pending", "running", "complete"]
                .contains(&value["status"].as_str().unwrap_or_default()));
            assert!(value["request"]["body"].is_object());
            assert_eq!(value["request"]["command"], "import_graph");
        }
    }

    #[test]
    fn single_job_builders_render_their_arguments() {
        let job = parse(&memory_job("m1", Some("2024-05-23 09:54:00"), "failed"));
        assert_eq!(job["startTime"], "2024-05-23 09:54:00");
        assert_eq!(job["endTime"], "2024-05-23 09:54:00");
        assert!(job["failReason"].is_string());

        let job = parse(&memory_job("m2", None, "pending"));
        assert_eq!(job["startTime"], "");
        assert_eq!(job["endTime"], "");
        assert!(job.get("failReason").is_none());

        let job = parse(&memory_job_with_start(
            "m3",
            json!(1_716_457_240_000_u64),
            "running",
        ));
        assert_eq!(job["startTime"], 1_716_457_240_000_u64);
        assert_eq!(job["status"], "running");

        let job = parse(&persistence_job(
            "p1",
            "success",
            "batch_build_index",
            "g\"x",
        ));
        assert_eq!(job["request"]["command"], "batch_build_index");
        assert!(job["request"]["url"]
            .as_str()
            .is_some_and(|url| url.contains("graphs/g\"x/indices")));

        let job = parse(&legacy_job("l1", "complete", "moviejx"));
        assert_eq!(job["jobId"], "l1");
        assert!(job["request"]["url"]
            .as_str()
            .is_some_and(|url| url.contains("/graphs/moviejx/")));
    }

    #[test]
    fn submitted_jobs_are_running_in_every_dialect() {
        let sub = Submission {
            task_type: "Algorithm",
            command: "execute_algorithm",
            url: "/ges/v1.0/p1/graphs/movies/action?action_id=execute-algorithm",
            raw_request: r#"{"algorithmName":"pagerank"}"#,
            now: 1_717_200_000,
        };
        let memory = parse(&submitted_job(Dialect::Memory, "a", &sub));
        assert_eq!(memory["startTime"], "2024-06-01 00:00:00");
        assert_eq!(memory["rawRequest"], sub.raw_request);
        assert_eq!(memory["status"], "running");
        let persistence = parse(&submitted_job(Dialect::Persistence, "b", &sub));
        assert_eq!(persistence["request"]["url"], sub.url);
        assert_eq!(persistence["request"]["rawRequest"], sub.raw_request);
        let legacy = parse(&submitted_job(
            Dialect::Legacy,
            "c",
            &Submission {
                raw_request: "not json",
                ..sub
            },
        ));
        assert_eq!(legacy["request"]["body"], json!({}));
        assert_eq!(
            job_status(&submitted_job(Dialect::Legacy, "c", &sub).json),
            "running"
        );
    }

    #[test]
    fn render_list_splices_jobs_per_dialect() {
        let jobs = generate(Dialect::Persistence, 5, 1, "movies");
        let body: Value = serde_json::from_slice(&render_list(Dialect::Persistence, &jobs[1..4]))
            .expect("a list body must be JSON");
        assert_eq!(body["totalCount"], 3);
        assert_eq!(body["result"], "success");
        let ids: Vec<&str> = body["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["jobId"].as_str())
            .collect();
        assert_eq!(ids, [&jobs[1].id, &jobs[2].id, &jobs[3].id]);

        for dialect in [Dialect::Memory, Dialect::Legacy] {
            let jobs = generate(dialect, 3, 1, "movies");
            let body: Value = serde_json::from_slice(&render_list(dialect, &jobs))
                .expect("a list body must be JSON");
            assert!(
                body.get("totalCount").is_none(),
                "{dialect} has no totalCount"
            );
            assert_eq!(body["jobs"].as_array().map(Vec::len), Some(3));
            assert_eq!(body["result"], "success");
        }

        let empty = render_list(Dialect::Persistence, &[]);
        assert_eq!(
            &empty[..],
            br#"{"jobs":[],"totalCount":0,"result":"success"}"#
        );
    }

    #[test]
    fn job_status_defaults_to_running() {
        assert_eq!(job_status(br#"{"jobId":"x","status":"failed"}"#), "failed");
        assert_eq!(job_status(br#"{"jobId":"x"}"#), "running");
        assert_eq!(job_status(br#"{"status":3}"#), "running");
        assert_eq!(job_status(b"not json"), "running");
    }

    #[test]
    fn format_time_is_utc_civil_time() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(951_830_055), "2000-02-29 13:14:15");
        assert_eq!(format_time(1_717_436_096), "2024-06-03 17:34:56");
        assert_eq!(format_time(1_735_689_599), "2024-12-31 23:59:59");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn permute_is_invertible_in_practice() {
        let outputs: HashSet<(u64, u64)> = (0..64)
            .flat_map(|a| (0..64).map(move |b| permute(a, b)))
            .collect();
        assert_eq!(outputs.len(), 64 * 64);
    }
}
