//! The edge's HTTP API as a player uses it: start a game, join it, get tickets.

use serde::Deserialize;
use serde_json::json;

use crate::{BotsConfig, Error, now_us};

/// A ticket from the edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ticket {
    pub(crate) game_id: String,
    pub(crate) ws_endpoint: String,
    pub(crate) token: String,
    pub(crate) start_at: i64,
    pub(crate) tick_ms: i64,
}

/// One game's tickets, and how many of its players the edge refused as at capacity.
#[derive(Debug)]
pub(crate) struct Game {
    pub(crate) tickets: Vec<Ticket>,
    pub(crate) refused: usize,
}

/// Creates one game starting at `start_at` (epoch ms) and tickets for all its players. A join
/// refused as `at_capacity` leaves that player out; a refused start is `Error::AtCapacity`.
pub(crate) async fn create_game(
    http: &reqwest::Client,
    config: &BotsConfig,
    session: usize,
    start_at: i64,
) -> Result<Game, Error> {
    let countdown_ms = (start_at - now_us() / 1000).clamp(0, 60_000);
    let mut body = json!({ "userId": format!("bot-{session}-0"), "tickMs": config.tick_ms, "countdownMs": countdown_ms });
    if let Some(region) = &config.region {
        body["preferredRegion"] = json!(region);
    }
    if let Some(max_tick_ms) = config.max_tick_ms {
        body["maxTickMs"] = json!(max_tick_ms);
    }
    if let Some((min, max)) = config.break_steps {
        body["minBreakSteps"] = json!(min);
        body["maxBreakSteps"] = json!(max);
    }
    let first: Ticket = post(http, &format!("{}/edge/game/start", config.edge), &body).await?;
    let mut game = Game { tickets: vec![first.clone()], refused: 0 };
    for player in 1..config.players_per_session {
        let url = format!("{}/edge/game/{}/join", config.edge, first.game_id);
        match post(http, &url, &json!({ "userId": format!("bot-{session}-{player}") })).await {
            Ok(ticket) => game.tickets.push(ticket),
            Err(Error::AtCapacity { .. }) => game.refused += 1,
            Err(error) => return Err(error),
        }
    }
    Ok(game)
}

async fn post(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Result<Ticket, Error> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|source| Error::Http { url: url.to_owned(), source })?;
    let status = response.status().as_u16();
    if status == 503 {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if body["error"] == "at_capacity" {
            return Err(Error::AtCapacity { url: url.to_owned() });
        }
        return Err(Error::Edge { url: url.to_owned(), status, body: body.to_string() });
    }
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(Error::Edge { url: url.to_owned(), status, body });
    }
    response.json().await.map_err(|source| Error::Http { url: url.to_owned(), source })
}
