#![allow(missing_docs)]
//! The catalog's JSON schemas (`GET /edri/events`) agree with the server: for every event of
//! this test app, bodies generated from the schema and mutated around it (integer bounds of
//! every width, floats, wrong types, extra, missing and nested fields, enum variants) are
//! sent over HTTP; whatever the schema accepts is answered `200`, whatever it refuses `400`.
//! "The schema accepts" is decided by the `jsonschema` crate; the generator is seeded and
//! bounded.

use edri::api::Api;
use edri::prelude::*;
use edri::schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::time::Duration;

#[event(request, http = "POST /schema/ints")]
#[derive(Debug, Clone)]
pub struct SchemaInts {
    pub a: u8,
    pub b: u16,
    pub c: u32,
    pub d: u64,
    pub e: i8,
    pub f: i16,
    pub g: i32,
    pub h: i64,
    pub size: usize,
}

#[event(request, http = "POST /schema/floats")]
#[derive(Debug, Clone)]
pub struct SchemaFloats {
    pub x: f32,
    pub y: f64,
}

#[event(request, http = "POST /schema/texts")]
#[derive(Debug, Clone)]
pub struct SchemaTexts {
    pub s: String,
    pub flag: bool,
    pub letter: char,
}

/// Option, Vec, a tuple, and serde's `default`, `rename` and `skip`.
#[event(request, http = "POST /schema/shapes")]
#[derive(Debug, Clone)]
pub struct SchemaShapes {
    pub maybe: Option<u32>,
    pub list: Vec<i16>,
    #[serde(default)]
    pub level: u8,
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(skip)]
    pub cache: u32,
    pub pair: (u8, bool),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub struct Point {
    pub x: i32,
    pub y: u16,
}

#[event(request, http = "POST /schema/nested")]
#[derive(Debug, Clone)]
pub struct SchemaNested {
    pub point: Point,
    pub points: Vec<Point>,
    pub origin: Option<Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub enum Color {
    Red,
    Green,
    Blue,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub enum Shape {
    Circle { r: u16 },
    Square(u8),
    Empty,
}

#[event(request, http = "POST /schema/enums")]
#[derive(Debug, Clone)]
pub struct SchemaEnums {
    pub color: Color,
    pub shape: Shape,
}

/// A container `rename_all` (and a field `rename` that overrides it).
#[event(request, http = "POST /schema/camel")]
#[derive(Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SchemaCamel {
    pub user_name: String,
    pub max_items: Option<u8>,
    #[serde(rename = "ID")]
    pub id: u32,
}

#[event(request, http = "POST /schema/unit")]
#[derive(Debug, Clone)]
pub struct SchemaUnit;

#[derive(Default)]
pub struct SchemaSvc;

#[manager]
impl SchemaSvc {
    #[solve]
    fn ints(&self, _: &SchemaInts) -> SchemaIntsResponse {
        SchemaIntsResponse
    }
    #[solve]
    fn floats(&self, _: &SchemaFloats) -> SchemaFloatsResponse {
        SchemaFloatsResponse
    }
    #[solve]
    fn texts(&self, _: &SchemaTexts) -> SchemaTextsResponse {
        SchemaTextsResponse
    }
    #[solve]
    fn shapes(&self, _: &SchemaShapes) -> SchemaShapesResponse {
        SchemaShapesResponse
    }
    #[solve]
    fn nested(&self, _: &SchemaNested) -> SchemaNestedResponse {
        SchemaNestedResponse
    }
    #[solve]
    fn enums(&self, _: &SchemaEnums) -> SchemaEnumsResponse {
        SchemaEnumsResponse
    }
    #[solve]
    fn camel(&self, _: &SchemaCamel) -> SchemaCamelResponse {
        SchemaCamelResponse
    }
    #[solve]
    fn unit(&self, _: &SchemaUnit) -> SchemaUnitResponse {
        SchemaUnitResponse
    }
}

const LIMIT: Duration = Duration::from_secs(10);
/// Bodies tried per event.
const CASES: usize = 160;

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values around every bound and of every JSON type, for mutations.
fn pool() -> Vec<Value> {
    let mut values: Vec<Value> = vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(18_446_744_073_709_551_616.0_f64), // 2^64
        json!(-9_223_372_036_854_775_809.0_f64), // below i64::MIN
        json!(1.0),
        json!(1e2),
        json!(-0.0),
        json!(0.5),
        json!(-2.5),
        json!(3.4e38),
        json!(1e39),
        json!(1e300),
        json!(""),
        json!("x"),
        json!("ab"),
        json!("é"),
        json!("e\u{301}"),
        json!("🦀"),
        json!("12"),
        json!("Red"),
        json!("red"),
        json!("Purple"),
        json!("Empty"),
        json!("user_name"),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!([1]),
        json!([1, true]),
        json!([300, -40000]),
        json!(["a"]),
        json!({}),
        json!({"x": 1, "y": 2}),
        json!({"x": 1, "y": 2, "z": 3}),
        json!({"x": 1}),
        json!({"x": -2_147_483_649_i64, "y": 2}),
        json!({"Circle": {"r": 1}}),
        json!({"Circle": {"r": 65536}}),
        json!({"Square": 300}),
        json!({"Square": 3}),
        json!({"Empty": null}),
        json!({"Red": null}),
        json!({"Red": {}}),
        json!({"Circle": null}),
    ];
    for bits in [8u32, 16, 32] {
        let (umax, imin, imax) = (1i64 << bits, -(1i64 << (bits - 1)), 1i64 << (bits - 1));
        values.extend([
            json!(umax - 1),
            json!(umax),
            json!(imin),
            json!(imin - 1),
            json!(imax - 1),
            json!(imax),
        ]);
    }
    values
}

/// A value that `schema` accepts (`defs` resolves `$ref`s).
fn valid(schema: &Value, defs: &Map<String, Value>, rng: &mut Rng, depth: usize) -> Value {
    let Some(map) = schema.as_object() else { return json!(1) };
    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return valid(&defs[name], defs, rng, depth + 1);
    }
    if let Some(c) = map.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(options)) = map.get("enum") {
        return rng.pick(options).clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = map.get(key) {
            let option = rng.pick(options).clone();
            return valid(&option, defs, rng, depth + 1);
        }
    }
    let types: Vec<&str> = match map.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec!["integer"],
    };
    match *rng.pick(&types) {
        "null" => Value::Null,
        "boolean" => json!(rng.below(2) == 0),
        "integer" => {
            let min =
                map.get("minimum").and_then(Value::as_i64).map_or(i128::from(i64::MIN), i128::from);
            let max = map.get("maximum").map_or(i128::from(i64::MAX), |m| {
                m.as_u64().map(i128::from).or(m.as_i64().map(i128::from)).unwrap_or(0)
            });
            let span = (max - min) as u128;
            let n = match rng.below(4) {
                0 => min,
                1 => max,
                _ => min + (u128::from(rng.next()) % span.max(1)) as i128,
            };
            u64::try_from(n).map(Value::from).unwrap_or_else(|_| Value::from(n as i64))
        }
        "number" => rng.pick(&[json!(0.5), json!(-1.25), json!(1e10), json!(3)]).clone(),
        "string" => {
            let one = map.get("maxLength").and_then(Value::as_u64) == Some(1);
            if one {
                json!(rng.pick(&["a", "é", "🦀"]))
            } else {
                json!(rng.pick(&["", "milk", "é🦀", "with space"]))
            }
        }
        "array" => {
            if let Some(Value::Array(items)) = map.get("prefixItems") {
                Value::Array(items.iter().map(|s| valid(s, defs, rng, depth + 1)).collect())
            } else {
                let n = if depth > 4 { 0 } else { rng.below(4) };
                let items = map.get("items").cloned().unwrap_or(json!({}));
                Value::Array((0..n).map(|_| valid(&items, defs, rng, depth + 1)).collect())
            }
        }
        _ => {
            let mut out = Map::new();
            let required: Vec<&str> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, prop) in props {
                    if required.contains(&name.as_str()) || rng.below(2) == 0 {
                        out.insert(name.clone(), valid(prop, defs, rng, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
    }
}

/// `value` changed in one place: a field (or a field's element or member) replaced by a
/// pool value, an unknown field added, or a field removed.
fn mutate(mut value: Value, pool: &[Value], rng: &mut Rng) -> Value {
    let Value::Object(object) = &mut value else { return value };
    let keys: Vec<String> = object.keys().cloned().collect();
    match rng.below(6) {
        0 => {
            object.insert("extra".into(), rng.pick(pool).clone());
        }
        1 if !keys.is_empty() => {
            object.remove(rng.pick(&keys));
        }
        _ if !keys.is_empty() => {
            let key = rng.pick(&keys).clone();
            let field = object.get_mut(&key).expect("a key of the object");
            let replacement = rng.pick(pool).clone();
            match field {
                Value::Array(items) if !items.is_empty() && rng.below(2) == 0 => {
                    let i = rng.below(items.len());
                    items[i] = replacement;
                }
                Value::Object(members) if !members.is_empty() && rng.below(2) == 0 => {
                    let member = rng.pick(&members.keys().cloned().collect::<Vec<_>>()).clone();
                    members.insert(member, replacement);
                }
                _ => *field = replacement,
            }
        }
        _ => {
            object
                .insert(rng.pick(&["extra", "x", "user_name"]).to_string(), rng.pick(pool).clone());
        }
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_schema_accepts_the_server_accepts_and_only_that() {
    let running = within("start", Edri::builder().api(Api::new("127.0.0.1:0")).start())
        .await
        .expect("starts");
    let addr = running.api_addr().expect("the API");
    let c = reqwest::Client::builder().no_proxy().timeout(LIMIT).build().unwrap();
    let catalog: Value = within("the catalog", async {
        c.get(format!("http://{addr}/edri/events")).send().await?.json().await
    })
    .await
    .expect("the catalog");
    let defs = catalog["$defs"].as_object().cloned().unwrap_or_default();
    let pool = pool();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut disagreements = Vec::new();
    let mut tried = 0;
    let mut mix = Vec::new();
    for event in catalog["events"].as_array().expect("events") {
        let name = event["name"].as_str().expect("a name");
        let path = event["http"]["path"].as_str().expect("every event here has a route");
        let mut schema = event["fields"].clone();
        schema["$defs"] = Value::Object(defs.clone());
        let validator = jsonschema::options()
            .should_validate_formats(false)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema of {name} compiles: {e}\n{schema:#}"));
        let mut response_schema = event["response"].clone();
        response_schema["$defs"] = Value::Object(defs.clone());
        let response_validator = jsonschema::validator_for(&response_schema).expect("compiles");
        let (mut accepted, mut refused) = (0, 0);
        for case in 0..CASES {
            let base = valid(&event["fields"], &defs, &mut rng, 0);
            let body = if case % 4 == 0 { base } else { mutate(base, &pool, &mut rng) };
            let schema_says = validator.is_valid(&body);
            let response =
                within("a request", c.post(format!("http://{addr}{path}")).json(&body).send())
                    .await
                    .expect("answered");
            let code = response.status().as_u16();
            let answer: Value = within("a body", response.json()).await.expect("JSON");
            tried += 1;
            match (code, schema_says) {
                (200, true) => {
                    accepted += 1;
                    assert!(response_validator.is_valid(&answer), "{name}: response {answer}");
                }
                (400, false) => refused += 1,
                _ => disagreements.push(format!(
                    "{name} {body}: schema {}, server {code} {answer}",
                    if schema_says { "accepts" } else { "refuses" }
                )),
            }
        }
        mix.push((name.to_owned(), accepted, refused));
    }
    assert_eq!(tried, 8 * CASES, "every event of the app was tried");
    assert!(
        disagreements.is_empty(),
        "{} of {tried} bodies where the schema and the server disagree:\n{}",
        disagreements.len(),
        disagreements.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    // Both sides of the line are exercised for every event.
    for (name, accepted, refused) in mix {
        assert!(accepted >= 10 && refused >= 10, "{name}: {accepted} accepted, {refused} refused");
    }
    running.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_closed_and_bounds_every_integer() {
    let running = within("start", Edri::builder().api(Api::new("127.0.0.1:0")).start())
        .await
        .expect("starts");
    let addr = running.api_addr().expect("the API");
    let catalog: Value = within("the catalog", async {
        reqwest::Client::new().get(format!("http://{addr}/edri/events")).send().await?.json().await
    })
    .await
    .expect("the catalog");
    let ints = catalog["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["name"] == "SchemaInts"))
        .expect("SchemaInts");
    let fields = &ints["fields"];
    assert_eq!(fields["additionalProperties"], json!(false));
    let bounds = |f: &str| {
        (fields["properties"][f]["minimum"].clone(), fields["properties"][f]["maximum"].clone())
    };
    assert_eq!(bounds("c"), (json!(0), json!(u32::MAX)));
    assert_eq!(bounds("d"), (json!(0), json!(u64::MAX)));
    assert_eq!(bounds("g"), (json!(i32::MIN), json!(i32::MAX)));
    assert_eq!(bounds("h"), (json!(i64::MIN), json!(i64::MAX)));
    assert_eq!(catalog["$defs"]["Point"]["properties"]["x"]["maximum"], json!(i32::MAX));
    let camel = catalog["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["name"] == "SchemaCamel"))
        .expect("SchemaCamel");
    let mut names: Vec<&String> =
        camel["fields"]["properties"].as_object().expect("properties").keys().collect();
    names.sort_unstable();
    assert_eq!(names, ["ID", "maxItems", "userName"]);
    running.shutdown().await.expect("stops");
}
