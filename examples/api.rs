//! The API broker: a small notes service over REST, with a WebSocket feed of new notes and a
//! clock. Runs until Ctrl-C.
//!
//! `cargo run --release --example api`, then (see the README for more):
//!
//! ```text
//! curl -s -X POST localhost:8080/notes -d '{"title": "milk", "body": "2 litres"}'
//! curl -s localhost:8080/notes/1
//! curl -s 'localhost:8080/notes?prefix=mi'
//! curl -s -X DELETE localhost:8080/notes/1
//! curl -s localhost:8080/edri/events
//! ```
//!
//! and open <http://127.0.0.1:8080/edri> for a live picture of the managers and events.

use edri::Job;
use edri::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// A stored note (its own type, with a JSON schema for the catalog).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, edri::schemars::JsonSchema)]
#[schemars(crate = "edri::schemars")]
pub struct Note {
    /// Its id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
}

/// Stores a note: `POST /notes` with a JSON body, or over the WebSocket.
#[event(request, http = "POST /notes", ws)]
#[derive(Debug, Clone)]
pub struct CreateNote {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The new note's id.
    #[response]
    pub id: u64,
}

/// One note: `GET /notes/{id}`.
#[event(request, response = Note, http = "GET /notes/{id}", ws)]
#[derive(Debug, Clone)]
pub struct GetNote {
    /// The note's id (from the path).
    pub id: u64,
}

/// The notes whose title starts with `prefix`: `GET /notes?prefix=..`.
#[event(request, http = "GET /notes")]
#[derive(Debug, Clone)]
pub struct ListNotes {
    /// Only titles starting with this (from the query; optional).
    pub prefix: Option<String>,
    /// The notes, by id.
    #[response]
    pub notes: Vec<Note>,
}

/// Deletes a note: `DELETE /notes/{id}`; `404` when there is none.
#[event(request, http = "DELETE /notes/{id}")]
#[derive(Debug, Clone)]
pub struct DeleteNote {
    /// The note's id (from the path).
    pub id: u64,
}

/// Pushed to WebSocket subscribers when a note is stored.
#[event(notification, ws)]
#[derive(Debug, Clone)]
pub struct NoteCreated {
    /// Its id.
    pub id: u64,
    /// Its title.
    pub title: String,
}

/// Pushed to WebSocket subscribers every second by the scheduler.
#[event(notification, ws)]
#[derive(Debug, Clone, Default)]
pub struct Tick;

/// Keeps the notes in memory.
#[derive(Default)]
pub struct Notes {
    notes: BTreeMap<u64, Note>,
    next: u64,
}

#[manager]
impl Notes {
    #[solve]
    async fn create(&mut self, ev: CreateNote, ctx: &Ctx) -> Result<CreateNoteResponse, Failure> {
        if ev.title.trim().is_empty() {
            return Err(Failure::invalid("a note needs a title"));
        }
        self.next += 1;
        let id = self.next;
        let title = ev.title.clone();
        self.notes.insert(id, Note { id, title: ev.title, body: ev.body });
        ctx.notify(NoteCreated { id, title }).await?;
        Ok(CreateNoteResponse { id })
    }

    #[solve]
    fn get(&self, ev: &GetNote) -> Result<Note, Failure> {
        self.notes
            .get(&ev.id)
            .cloned()
            .ok_or_else(|| Failure::not_found(format!("no note {}", ev.id)))
    }

    #[solve]
    fn list(&self, ev: &ListNotes) -> ListNotesResponse {
        let prefix = ev.prefix.as_deref().unwrap_or("");
        let notes = self.notes.values().filter(|n| n.title.starts_with(prefix)).cloned().collect();
        ListNotesResponse { notes }
    }

    #[solve]
    fn delete(&mut self, ev: &DeleteNote) -> Result<DeleteNoteResponse, Failure> {
        match self.notes.remove(&ev.id) {
            Some(_) => Ok(DeleteNoteResponse),
            None => Err(Failure::not_found(format!("no note {}", ev.id))),
        }
    }
}

#[edri::main]
async fn main() -> edri::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let addr = std::env::var("EDRI_API_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let running = Edri::builder()
        .api(addr.as_str())
        .job(Job::every(Duration::from_secs(1), Tick).named("tick"))
        .start()
        .await?;
    let addr = running.api_addr().expect("the API runs");
    println!("notes API on http://{addr}  (Ctrl-C stops)");
    println!("the live page: http://{addr}/edri");
    running.wait_for_stop_signal().await;
    running.shutdown().await
}
