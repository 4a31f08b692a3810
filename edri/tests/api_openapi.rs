#![allow(missing_docs)]
//! `GET /edri/openapi.json`, fetched over real HTTP from a running router, checked by a real
//! OpenAPI 3.1 validator (`openapi-spec-validator`, from PyPI) and read for what it must say:
//! paths, parameters, bodies, responses with the error object, the bearer scheme.

use edri::api::Api;
use edri::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A nested type with a schema of its own (a `components/schemas` entry).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, edri::schemars::JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub struct OasLine {
    pub sku: String,
    pub count: u32,
    pub colour: OasColour,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, edri::schemars::JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub enum OasColour {
    Red,
    Blue,
}

/// A body, a path parameter, a nested array.
#[event(request, http = "POST /oas/shops/{shop}/orders")]
#[derive(Debug, Clone)]
pub struct OasPlace {
    pub shop: String,
    pub lines: Vec<OasLine>,
    pub note: Option<String>,
    #[response]
    pub id: u64,
}

/// Path and query parameters.
#[event(request, http = "GET /oas/orders/{id}")]
#[derive(Debug, Clone)]
pub struct OasGet {
    pub id: u64,
    pub verbose: Option<bool>,
    #[serde(default)]
    pub fields: Vec<String>,
    #[response]
    pub line: Option<OasLine>,
}

/// Same path, another method; an acknowledgement.
#[event(request, http = "DELETE /oas/orders/{id}")]
#[derive(Debug, Clone)]
pub struct OasCancel {
    pub id: u64,
}

/// On the WebSocket only: not a path.
#[event(notification, ws)]
#[derive(Debug, Clone)]
pub struct OasPlaced {
    pub id: u64,
}

#[derive(Default)]
pub struct OasSvc;

#[manager]
impl OasSvc {
    #[solve]
    fn place(&self, _: &OasPlace) -> OasPlaceResponse {
        OasPlaceResponse { id: 1 }
    }

    #[solve]
    fn get(&self, _: &OasGet) -> OasGetResponse {
        OasGetResponse { line: None }
    }

    #[solve]
    fn cancel(&self, _: &OasCancel) -> OasCancelResponse {
        OasCancelResponse
    }
}

const LIMIT: Duration = Duration::from_secs(10);

/// `openapi-spec-validator`: `EDRI_OPENAPI_VALIDATOR` if set, else the one on the `PATH`,
/// else the PyPI package installed once into a venv under the target directory (as
/// `.ci/run` does), so that `cargo test --workspace` sets itself up. Fails with a clear
/// message when none can be had; never skips.
fn validator() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        const HOW: &str = "the OpenAPI test needs `openapi-spec-validator`: put it on the \
                           PATH, set EDRI_OPENAPI_VALIDATOR, or let the test install it from \
                           PyPI (needs python3 with venv and pip)";
        let runs =
            |p: &Path| Command::new(p).arg("--help").output().is_ok_and(|o| o.status.success());
        if let Some(path) = std::env::var_os("EDRI_OPENAPI_VALIDATOR") {
            let path = PathBuf::from(path);
            assert!(runs(&path), "EDRI_OPENAPI_VALIDATOR={} does not run; {HOW}", path.display());
            return path;
        }
        let on_path = PathBuf::from("openapi-spec-validator");
        if runs(&on_path) {
            return on_path;
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-validator-venv");
        let path = venv.join("bin").join("openapi-spec-validator");
        if runs(&path) {
            return path;
        }
        eprintln!("installing openapi-spec-validator from PyPI into {}", venv.display());
        let ok = |mut c: Command| c.status().is_ok_and(|s| s.success());
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "openapi-spec-validator"]);
        assert!(ok(make) && ok(pip), "installing into {} failed: {HOW}", venv.display());
        assert!(runs(&path), "{} does not run after installing it; {HOW}", path.display());
        path
    })
}

/// Runs the validator on `document`: `Ok` or its complaint.
fn validate(document: &Value, name: &str) -> Result<(), String> {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("edri-openapi-{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    let mut child = Command::new(validator())
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the validator starts");
    // Bounded: the validator reads one small file.
    let started = std::time::Instant::now();
    while child.try_wait().expect("waits").is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "the validator hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

async fn fetch(api: Api) -> Value {
    let running = tokio::time::timeout(LIMIT, Edri::builder().api(api).start())
        .await
        .expect("starts in time")
        .expect("starts");
    let addr = running.api_addr().expect("listening");
    let client = reqwest::Client::builder().no_proxy().timeout(LIMIT).build().unwrap();
    let response = client
        .get(format!("http://{addr}/edri/openapi.json"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    let document: Value = response.json().await.expect("JSON");
    tokio::time::timeout(LIMIT, running.shutdown()).await.expect("stops in time").expect("stops");
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1_and_says_what_the_broker_does() {
    let open = fetch(Api::new("127.0.0.1:0")).await;
    let secured = fetch(Api::new("127.0.0.1:0").token_named("alice", "s3cret")).await;
    let checked = tokio::task::spawn_blocking(move || {
        validate(&open, "open").unwrap_or_else(|e| panic!("the open document: {e}"));
        validate(&secured, "secured").unwrap_or_else(|e| panic!("the secured document: {e}"));
        // The validator does fail: a document with a dangling reference is refused.
        let mut broken = secured.clone();
        broken["components"]["schemas"].as_object_mut().unwrap().remove("Error");
        broken["paths"]["/oas/orders/{id}"]["get"]["parameters"][0]["in"] = json!("nowhere");
        assert!(validate(&broken, "broken").is_err(), "the validator accepts anything");
        (open, secured)
    });
    let (open, secured) = tokio::time::timeout(Duration::from_secs(300), checked)
        .await
        .expect("validated in time (the first run may install the validator)")
        .expect("validated");

    assert_eq!(open["openapi"], "3.1.0");
    let place = &open["paths"]["/oas/shops/{shop}/orders"]["post"];
    assert_eq!(place["operationId"], "OasPlace");
    assert_eq!(
        place["parameters"][0],
        json!({"name": "shop", "in": "path", "required": true, "schema": {"type": "string"}})
    );
    let body = &place["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["lines"]), "{body}");
    assert!(body["properties"].get("shop").is_none(), "the path parameter is not in the body");
    let line = &body["properties"]["lines"]["items"]["$ref"];
    assert_eq!(line, "#/components/schemas/OasLine");
    assert!(open["components"]["schemas"]["OasColour"].is_object(), "nested types are components");
    let ok = &place["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(ok["properties"]["id"]["type"], "integer", "{ok}");
    for code in ["400", "401", "403", "404", "408", "409", "413", "500", "503", "504"] {
        assert_eq!(place["responses"][code]["$ref"], format!("#/components/responses/{code}"));
    }
    let error = &open["components"]["schemas"]["Error"]["properties"]["error"];
    assert_eq!(error["required"], json!(["status", "message"]));
    assert!(error["properties"]["field"].is_object());
    assert!(
        error["properties"]["status"]["enum"].as_array().unwrap().contains(&json!("too_large"))
    );
    assert!(open["components"]["responses"]["405"].is_object());

    let orders = &open["paths"]["/oas/orders/{id}"];
    let names: Vec<(&str, &str)> = orders["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("id", "path"), ("fields", "query"), ("verbose", "query")]);
    assert_eq!(orders["get"]["parameters"][0]["schema"]["type"], "integer");
    assert_eq!(orders["delete"]["operationId"], "OasCancel");
    assert!(orders["get"].get("requestBody").is_none());
    assert!(open["paths"]["/edri/events"]["get"].is_object());
    assert!(open["paths"]["/edri/ws"]["get"].is_object());
    let paths = open["paths"].as_object().unwrap();
    assert!(!paths.keys().any(|p| p.contains("OasPlaced")), "ws-only events have no path");
    assert!(open.get("security").is_none(), "no token, no security");

    assert_eq!(secured["security"], json!([{"bearer": []}]));
    assert_eq!(secured["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}
