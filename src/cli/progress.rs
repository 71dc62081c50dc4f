//! Following a replay in the background until it ends, with its progress on stderr for a
//! person watching (a line redrawn in place on a terminal, a line per change otherwise).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::Value;

use super::client::{ApiClient, ClientError};

/// How often the replay is asked how far it got.
const POLL: Duration = Duration::from_millis(250);

/// `started`: the answer to `POST …/replay` with `background`. Prints the replay's last
/// state (its JSON with `--json`); a replay that did not finish is an error.
pub async fn follow_replay(client: &ApiClient, json: bool, started: Value) -> Result<(), ClientError> {
    let id = started["id"].as_str().ok_or_else(|| ClientError::Usage(format!("not a replay: {started}")))?.to_owned();
    let terminal = std::io::stderr().is_terminal();
    let mut replay = started;
    let mut shown = String::new();
    loop {
        let line = format!("replaying: {} of {} requeued", replay["requeued"], replay["total"]);
        if line != shown {
            let mut err = std::io::stderr();
            let _ = if terminal { write!(err, "\r{line}") } else { writeln!(err, "{line}") };
            let _ = err.flush();
            shown = line;
        }
        if replay["state"] != "running" {
            break;
        }
        actix_rt::time::sleep(POLL).await;
        replay = client.get(&format!("/replays/{id}")).await?;
    }
    if terminal {
        eprintln!();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&replay).unwrap_or_default());
    } else {
        println!("replay {id} {}: {} deliveries requeued", replay["state"].as_str().unwrap_or("?"), replay["requeued"]);
    }
    match replay["state"].as_str() {
        Some("finished") => Ok(()),
        state => Err(ClientError::Usage(format!(
            "replay {id} ended {}: {}",
            state.unwrap_or("?"),
            replay["error"].as_str().unwrap_or("run it again to requeue the rest")
        ))),
    }
}
