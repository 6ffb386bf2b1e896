//! The HTTP side (axum): the page and its vendored assets, a JSON view per run, one group,
//! the study's bands, and `/events` — server-sent events carrying the dashboard's change
//! counter. A non-loopback dashboard answers only requests that carry its cookie
//! (`?cookie=…`, which the page passes on to every request it makes).
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;

use super::questions::QuestionBook;
use super::state::{Dash, RunEntry};
use super::study::{RunCurves, bands};
use super::view::{self, RunState};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

/// Points per curve the page asks for unless it says otherwise.
const DEFAULT_POINTS: usize = 400;

type Shared = Arc<Dash>;

/// Serves `dash` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, dash: Shared) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/assets/{name}", get(asset))
        .route("/api/overview", get(overview))
        .route("/api/run/{id}", get(run))
        .route("/api/run/{id}/group", get(group))
        .route("/api/study", get(study))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(dash.clone(), guard))
        .with_state(dash);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Lets a request through when the dashboard has no cookie or the request carries it.
async fn guard(State(dash): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(cookie) = &dash.cookie {
        let given = req
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("cookie="));
        let ok = given.is_some_and(|g| {
            g.len() == cookie.len()
                && g.bytes()
                    .zip(cookie.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its cookie: open it as /?cookie=… (docs/operations.md)\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript"),
        "app.css" => (APP_CSS, "text/css"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css"),
        "uPlot.LICENSE" => (UPLOT_LICENSE, "text/plain"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn state_of(e: &RunEntry, planned: Option<u64>) -> RunState {
    if e.live.is_some() {
        RunState::Live
    } else {
        view::idle_state(&e.files, planned)
    }
}

async fn overview(State(dash): State<Shared>) -> Json<Value> {
    let mut runs = Vec::new();
    for (id, entry) in dash.runs.iter().enumerate() {
        let e = entry.lock().await;
        let plan = e.files.plan();
        runs.push(json!({
            "id": id, "label": e.files.label, "dir": e.files.dir,
            "state": state_of(&e, plan.steps), "steps": e.files.steps().len(),
            "planned_steps": plan.steps, "variant": plan.variant, "seed": plan.seed,
        }));
    }
    Json(json!({"runs": runs, "study": dash.study, "version": *dash.version.borrow()}))
}

#[derive(Deserialize)]
struct Points {
    points: Option<usize>,
}

/// Why a view cannot be given.
type Refusal = (StatusCode, String);

fn entry(dash: &Dash, id: usize) -> Result<&tokio::sync::Mutex<RunEntry>, Refusal> {
    dash.runs
        .get(id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, "no such run\n".into()))
}

async fn run(
    State(dash): State<Shared>,
    Path(id): Path<usize>,
    Query(q): Query<Points>,
) -> Result<Json<Value>, Refusal> {
    let points = q.points.unwrap_or(DEFAULT_POINTS).clamp(10, 5000);
    let e = entry(&dash, id)?.lock().await;
    let plan = e.files.plan();
    let live = e.live.as_ref();
    let facts = e.facts.as_ref();
    Ok(Json(json!({
        "id": id, "label": e.files.label, "dir": e.files.dir,
        "state": state_of(&e, plan.steps), "variant": plan.variant, "seed": plan.seed,
        "planned_steps": plan.steps,
        "committed_steps": live.and_then(|l| l.status.progress.as_ref().map(|p| p.committed_steps))
            .or(facts.map(|f| f.committed_steps)),
        "curves": view::curves(&e.files, points),
        "evals": view::evals(&e.files, points),
        "test": e.files.test(),
        "best": e.files.best(),
        "roles": view::roles(&e.files, live, facts),
        "nodes": view::nodes(live, &e.last_seen),
        "cluster": live.map(|l| l.status.cluster.clone()),
        "timeline": view::timeline(live, facts, &e.observed),
        "split": view::step_split(&e.files),
    })))
}

#[derive(Deserialize)]
struct GroupQuery {
    step: Option<u64>,
    query: Option<u32>,
}

async fn group(
    State(dash): State<Shared>,
    Path(id): Path<usize>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<Value>, Refusal> {
    let mut e = entry(&dash, id)?.lock().await;
    let last = e.files.steps().keys().next_back().copied();
    let Some(step) = q.step.or(last) else {
        return Err((StatusCode::NOT_FOUND, "no step committed yet\n".into()));
    };
    let groups = if let Some(s) = &e.store {
        tokio::task::block_in_place(|| super::run_files::groups_of(s, step))
    } else if e.live.is_some()
        && let Some(link) = &e.link
    {
        link.groups(step).await
    } else {
        tokio::task::block_in_place(|| e.files.groups(step))
    };
    let Some((groups, tool_calls)) = groups else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is busy (the run is between polls); try again\n".into(),
        ));
    };
    let query = q.query.unwrap_or(0);
    let Some(g) = groups.iter().find(|g| g.query == query) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("step {step} has no query {query}\n"),
        ));
    };
    let dir = e.files.dir.clone();
    let book = e
        .questions
        .get_or_insert_with(|| tokio::task::block_in_place(|| QuestionBook::load(&dir)));
    let question = tokio::task::block_in_place(|| book.describe(&g.question_id, step, query));
    Ok(Json(json!({
        "step": step, "query": query, "queries": groups.len(),
        "question_id": g.question_id, "question": question, "group": g,
        "tool_calls": tool_calls.iter().find(|t| t.query == query).map(|t| &t.calls),
    })))
}

async fn study(
    State(dash): State<Shared>,
    Query(q): Query<Points>,
) -> Result<Json<Value>, Refusal> {
    let points = q.points.unwrap_or(DEFAULT_POINTS).clamp(10, 5000);
    let mut runs = Vec::new();
    for entry in &dash.runs {
        let e = entry.lock().await;
        runs.push(RunCurves {
            variant: study_group(&e.files.label),
            dev: e
                .files
                .evals()
                .iter()
                .filter(|v| v["split"] == "dev")
                .filter_map(|v| Some((v["step"].as_u64()?, v["report"]["accuracy"].as_f64()?)))
                .collect(),
            reward: e
                .files
                .steps()
                .iter()
                .filter_map(|(s, m)| Some((*s, m.get("reward")?.as_f64()?)))
                .collect(),
        });
    }
    let summary = dash.study.as_ref().and_then(|d| {
        serde_json::from_str::<Value>(&std::fs::read_to_string(d.join("summary.json")).ok()?).ok()
    });
    Ok(Json(
        json!({"variants": bands(&runs, points), "summary": summary}),
    ))
}

/// A study run's group: its name without the seed (`mgrpo-s2-algo.eps=0.1` →
/// `mgrpo-algo.eps=0.1`), as `mgrpo experiment` names runs.
fn study_group(label: &str) -> String {
    label
        .split('-')
        .filter(|p| {
            !(p.len() > 1 && p.starts_with('s') && p[1..].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join("-")
}

async fn events(
    State(dash): State<Shared>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let stream = WatchStream::new(dash.version.subscribe())
        .map(|v| Ok(Event::default().event("update").data(v.to_string())));
    Sse::new(stream).keep_alive(KeepAlive::default())
}
