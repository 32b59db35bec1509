//! The single-pass reader against the former serde_json reading (`oracle`)
//! on generated bodies: job lists of both dialects written with odd
//! whitespace, escapes, Unicode, nested values and all number forms, then
//! often damaged by a cut or a changed, added or removed byte. Both must
//! accept or refuse alike, and read the same jobs when they accept.
//!
//! `PROPTEST_CASES` sets the case count of each property.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

use super::oracle::assert_agree;
use crate::engine::jobs::{generate, render_list};
use crate::engine::Dialect;

/// Tokens rendered as they are: strings with escapes that only decode
/// loosely (lone surrogates) or that are easy to get wrong.
const RAW_STRINGS: [&str; 8] = [
    r#""\ud800""#,
    r#""\udc00""#,
    r#""a\ud83d\ude00b""#,
    r#""\uD83D\uDE00""#,
    r#""\ud83d\u0041""#,
    r#""x\u0000y""#,
    r#""\/\b\f\n\r\t\"\\""#,
    r#""2024-05-23\u002009:54:00""#,
];

/// Keys rendered as they are: the keys that are read, spelled with escapes,
/// and keys that do not decode to text.
const RAW_KEYS: [&str; 9] = [
    r#""job\u0049d""#,
    r#""job\u005fid""#,
    r#""start\u0054ime""#,
    r#""j\u006fbs""#,
    r#""total\u0043ount""#,
    r#""\u006a\u006f\u0062\u0049\u0064""#,
    r#""jobId\u0000""#,
    r#""\ud800""#,
    r#""\udc00jobId""#,
];

/// Bytes worth putting where they do not belong.
const ODD_BYTES: [u8; 24] = [
    b'{', b'}', b'[', b']', b',', b':', b'"', b'\\', b'0', b'1', b'-', b'.', b'e', b'n', b' ',
    b'\n', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xe2, 0xf0, 0xff,
];

/// The dialects the stand-in engine renders.
const DIALECTS: [Dialect; 3] = [Dialect::Memory, Dialect::Persistence, Dialect::Legacy];

/// A JSON value to render; members keep their order, so keys may repeat.
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Raw(&'static str),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
}

/// An object key.
#[derive(Clone, Debug)]
enum Key {
    Text(String),
    Raw(&'static str),
}

/// How a body is damaged after it is written.
#[derive(Clone, Debug)]
enum Damage {
    None,
    Cut(Index),
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
}

/// Rendering choices, drawn from a fixed run of bytes.
struct Noise<'a> {
    bytes: &'a [u8],
    at: usize,
}

// === impl Noise ===

impl Noise<'_> {
    fn next(&mut self) -> u8 {
        let b = self.bytes.get(self.at % self.bytes.len().max(1)).copied();
        self.at += 1;
        b.unwrap_or(0)
    }

    fn ws(&mut self, out: &mut Vec<u8>) {
        const SPACES: [&str; 8] = ["", "", "", "", " ", "\n  ", "\t", " \r\n "];
        out.extend_from_slice(SPACES[usize::from(self.next() % 8)].as_bytes());
    }
}

// === impl J ===

impl J {
    fn render(&self, noise: &mut Noise<'_>, out: &mut Vec<u8>) {
        noise.ws(out);
        match self {
            J::Null => out.extend_from_slice(b"null"),
            J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            J::Num(n) => out.extend_from_slice(n.as_bytes()),
            J::Str(s) => render_str(s, noise, out),
            J::Raw(s) => out.extend_from_slice(s.as_bytes()),
            J::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.render(noise, out);
                    noise.ws(out);
                }
                noise.ws(out);
                out.push(b']');
            }
            J::Obj(members) => {
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    noise.ws(out);
                    match key {
                        Key::Text(k) => render_str(k, noise, out),
                        Key::Raw(k) => out.extend_from_slice(k.as_bytes()),
                    }
                    noise.ws(out);
                    out.push(b':');
                    value.render(noise, out);
                    noise.ws(out);
                }
                noise.ws(out);
                out.push(b'}');
            }
        }
    }
}

/// A JSON string for `s`, each character escaped or not as `noise` says.
fn render_str(s: &str, noise: &mut Noise<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        let escape = noise.next() >= 224 || c < ' ' || c == '"' || c == '\\';
        let short = match c {
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\n' => Some('n'),
            '\t' => Some('t'),
            '/' => Some('/'),
            _ => None,
        };
        match (escape, short) {
            (false, _) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            (true, Some(short)) if noise.next() & 1 == 0 => {
                out.extend_from_slice(format!("\\{short}").as_bytes());
            }
            (true, _) => {
                let upper = noise.next() & 1 == 0;
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let hex = if upper {
                        format!("\\u{unit:04X}")
                    } else {
                        format!("\\u{unit:04x}")
                    };
                    out.extend_from_slice(hex.as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _./-]{0,12}",
        2 => "\\PC{0,8}",
        1 => "[\\x00-\\x1f\"\\\\/\u{7f}\u{e9}\u{4e2d}\u{1f600}]{0,4}",
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?",
        1 => any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        2 => number().prop_map(J::Num),
        4 => text().prop_map(J::Str),
        1 => prop::sample::select(&RAW_STRINGS[..]).prop_map(J::Raw),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        6 => "[a-zA-Z_]{1,8}".prop_map(Key::Text),
        1 => text().prop_map(Key::Text),
        1 => prop::sample::select(&RAW_KEYS[..]).prop_map(Key::Raw),
    ]
}

/// Any value, nested a few levels.
fn value() -> impl Strategy<Value = J> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..4).prop_map(J::Obj),
        ]
    })
}

fn id_value() -> impl Strategy<Value = J> {
    prop_oneof![
        30 => "[a-f0-9-]{1,20}".prop_map(J::Str),
        3 => text().prop_map(J::Str),
        1 => Just(J::Null),
        1 => number().prop_map(J::Num),
        1 => prop::sample::select(&RAW_STRINGS[..]).prop_map(J::Raw),
    ]
}

fn start_value() -> impl Strategy<Value = J> {
    prop_oneof![
        4 => "20[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]".prop_map(J::Str),
        2 => "[0-9]{1,14}".prop_map(J::Str),
        2 => number().prop_map(J::Num),
        1 => Just(J::Str(String::new())),
        1 => Just(J::Null),
        1 => value(),
    ]
}

/// A member of a job object other than the ones read.
fn other_member() -> impl Strategy<Value = (Key, J)> {
    let named = |name: &str| Key::Text(name.to_string());
    prop_oneof![
        1 => "[a-z]{1,8}".prop_map(move |s| (named("status"), J::Str(s))),
        1 => prop::collection::vec((key(), value()), 0..4)
            .prop_map(move |m| (named("request"), J::Obj(m))),
        2 => (key(), value()),
    ]
}

/// An element of `jobs`: nearly always an object with an ID, members in any
/// order, now and then with a read key twice.
fn job() -> impl Strategy<Value = J> {
    let named = |name: &str| Key::Text(name.to_string());
    let object = (
        prop::option::weighted(0.95, id_value()),
        prop::option::weighted(0.15, id_value()),
        prop::option::weighted(0.7, start_value()),
        prop::collection::vec(other_member(), 0..5),
        prop::option::weighted(
            0.05,
            prop_oneof![
                id_value().prop_map(move |v| (named("jobId"), v)),
                start_value().prop_map(move |v| (named("startTime"), v)),
            ],
        ),
    )
        .prop_flat_map(move |(id, snake, start, others, twice)| {
            let members: Vec<(Key, J)> = [
                id.map(|v| (named("jobId"), v)),
                snake.map(|v| (named("job_id"), v)),
                start.map(|v| (named("startTime"), v)),
                twice,
            ]
            .into_iter()
            .flatten()
            .chain(others)
            .collect();
            Just(members).prop_shuffle().prop_map(J::Obj)
        });
    prop_oneof![40 => object, 1 => value()]
}

/// A whole body: nearly always an object with `jobs`, in any member order.
fn body() -> impl Strategy<Value = J> {
    let named = |name: &str| Key::Text(name.to_string());
    let jobs = prop_oneof![
        20 => prop::collection::vec(job(), 0..6).prop_map(J::Arr),
        1 => Just(J::Null),
        1 => value(),
    ];
    let total = prop_oneof![
        4 => any::<u64>().prop_map(|n| J::Num(n.to_string())),
        1 => Just(J::Null),
        1 => scalar(),
    ];
    let list = (
        prop::option::weighted(0.97, jobs),
        prop::option::of(total),
        prop::option::of(Just(J::Str("success".to_string()))),
        prop::collection::vec((key(), value()), 0..2),
    )
        .prop_flat_map(move |(jobs, total, result, extra)| {
            let members: Vec<(Key, J)> = [
                jobs.map(|v| (named("jobs"), v)),
                total.map(|v| (named("totalCount"), v)),
                result.map(|v| (named("result"), v)),
            ]
            .into_iter()
            .flatten()
            .chain(extra)
            .collect();
            Just(members).prop_shuffle().prop_map(J::Obj)
        });
    prop_oneof![20 => list, 1 => value()]
}

fn damage() -> impl Strategy<Value = Damage> {
    let byte = prop_oneof![3 => prop::sample::select(&ODD_BYTES[..]), 1 => any::<u8>()];
    prop_oneof![
        4 => Just(Damage::None),
        1 => any::<Index>().prop_map(Damage::Cut),
        2 => (any::<Index>(), byte.clone()).prop_map(|(at, b)| Damage::Replace(at, b)),
        1 => (any::<Index>(), byte).prop_map(|(at, b)| Damage::Insert(at, b)),
        1 => any::<Index>().prop_map(Damage::Remove),
    ]
}

// === impl Damage ===

impl Damage {
    fn apply(&self, body: &mut Vec<u8>) {
        match self {
            Damage::None => {}
            Damage::Cut(at) => body.truncate(at.index(body.len() + 1)),
            Damage::Replace(at, b) if !body.is_empty() => {
                let at = at.index(body.len());
                body[at] = *b;
            }
            Damage::Insert(at, b) => body.insert(at.index(body.len() + 1), *b),
            Damage::Remove(at) if !body.is_empty() => {
                body.remove(at.index(body.len()));
            }
            Damage::Replace(..) | Damage::Remove(_) => {}
        }
    }
}

fn limit() -> impl Strategy<Value = u64> {
    prop_oneof![1 => 0u64..4, 3 => Just(100u64)]
}

/// `PROPTEST_CASES`, or `default` cases.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(4_000))]

    #[test]
    fn written_bodies_are_read_as_before(
        body in body(),
        noise in prop::collection::vec(any::<u8>(), 1..64),
        damage in damage(),
        limit in limit(),
    ) {
        let mut text = Vec::new();
        body.render(&mut Noise { bytes: &noise, at: 0 }, &mut text);
        damage.apply(&mut text);
        assert_agree(&text, limit);
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn generated_node_bodies_are_read_as_before(
        dialect in prop::sample::select(&DIALECTS[..]),
        jobs in 0usize..8,
        seed in any::<u64>(),
        damage in damage(),
        limit in prop_oneof![Just(7u64), Just(100)],
    ) {
        let mut body = render_list(dialect, &generate(dialect, jobs, seed, "movies")).to_vec();
        let damaged = !matches!(damage, Damage::None);
        damage.apply(&mut body);
        let accepted = assert_agree(&body, limit);
        prop_assert!(accepted || damaged || jobs as u64 > limit, "a generated body is accepted");
    }
}
