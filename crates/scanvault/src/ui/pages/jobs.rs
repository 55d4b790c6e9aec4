//! Scan jobs: the queue, a job's audit trail, request, retry, cancel.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::super::view::{
    count, csrf, image_link, int, items, page, pager, short_digest, st, when,
};
use super::super::{urlencode, PageError, PageResult, Session};
use super::{given, query};
use crate::store::jobs::Lane;
use scanvault_core::job::JobStatus;

#[derive(Deserialize)]
pub struct JobsParams {
    status: Option<String>,
    offset: Option<String>,
}

const JOBS_PAGE: i64 = 50;

pub async fn jobs(s: Session, Query(p): Query<JobsParams>) -> PageResult {
    // The states and lanes as the API names them.
    let (states, lanes) = (
        JobStatus::ALL.map(JobStatus::as_str),
        Lane::ALL.map(Lane::as_str),
    );
    let status = given(&p.status);
    let offset: i64 = given(&p.offset)
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
        .max(0);
    let list_path = format!(
        "/scan-jobs?limit={JOBS_PAGE}&offset={offset}&{}",
        query(&[("status", status)])
    );
    let (list, counts) = tokio::try_join!(s.get(&list_path), s.get("/scan-jobs/counts"))?;
    let n = |state: &str, lane: &str| -> i64 {
        items(&counts)
            .iter()
            .filter(|c| st(c, "Status") == state && (lane.is_empty() || st(c, "Lane") == lane))
            .map(|c| int(c, "Count"))
            .sum()
    };
    let may_request = s.may(Method::POST, "/scan-jobs");
    let content = html! {
        @if may_request {
            form.inline method="post" action="/ui/jobs" {
                (csrf(&s))
                label for="j-image" { "Scan an image" }
                input #j-image type="text" name="image" required placeholder="registry/name:tag";
                label for="j-prio" { "Priority" }
                input #j-prio type="number" name="priority" value="0" min="-1000" max="1000";
                label { input type="checkbox" name="force" value="true"; " even if scanned recently" }
                button type="submit" { "Request" }
            }
        }
        table.queue {
            caption.visually-hidden { "Jobs by state and lane" }
            thead { tr { th scope="col" { "Lane" } @for state in states { th.n scope="col" { a href=(format!("/ui/jobs?status={state}")) { (state) } } } } }
            tbody {
                @for lane in lanes {
                    tr { th scope="row" { (lane) } @for state in states { td.n { (count(n(state, lane))) } } }
                }
                tr { th scope="row" { "all" } @for state in states { td.n { strong { (count(n(state, ""))) } } } }
            }
        }
        p.tabs {
            "State: "
            @if status.is_none() { strong { "all" } } @else { a href="/ui/jobs" { "all" } }
            @for st_ in states {
                " · "
                @if status == Some(st_) { strong { (st_) } } @else { a href=(format!("/ui/jobs?status={st_}")) { (st_) } }
            }
        }
        table.wide {
            thead { tr { th scope="col" { "Image" } th scope="col" { "State" } th scope="col" { "Lane" } th scope="col" { "Kind" } th.n scope="col" { "Attempts" } th scope="col" { "Updated" } th scope="col" { "Error" } } }
            tbody {
                @for j in items(&list) {
                    tr {
                        td { a href=(format!("/ui/jobs/{}", st(j, "ID"))) { (st(j, "Image")) } }
                        td { span class=(format!("state state-{}", st(j, "Status"))) { (st(j, "Status")) } }
                        td { (st(j, "Lane")) } td { (st(j, "Kind")) }
                        td.n { (int(j, "Attempts")) "/" (int(j, "MaxAttempts")) }
                        td { (when(st(j, "UpdatedAt"))) }
                        td { (st(j, "ErrorMessage")) }
                    }
                }
            }
        }
        (pager(&format!("/ui/jobs?{}", query(&[("status", status)])), offset, JOBS_PAGE, items(&list).len(), list["HasMore"].as_bool() == Some(true)))
    };
    Ok(page(&s, "Scan jobs", "Jobs", content))
}

#[derive(Deserialize)]
pub struct ScanRequestForm {
    csrf: String,
    image: String,
    priority: Option<String>,
    force: Option<String>,
}

pub async fn request_scan(
    s: Session,
    Form(f): Form<ScanRequestForm>,
) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    let priority: i64 = given(&f.priority).map_or(Ok(0), |p| {
        p.parse().map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "The priority must be a whole number.",
            )
        })
    })?;
    let job = s
        .send(
            Method::POST,
            "/scan-jobs",
            Some(
                &json!({"image": f.image.trim(), "priority": priority, "force": f.force.is_some()}),
            ),
        )
        .await?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", st(&job, "ID"))).into_response())
}

pub async fn job(s: Session, Path(id): Path<String>) -> PageResult {
    let enc = urlencode(&id);
    let (job_path, events_path) = (
        format!("/scan-jobs/{enc}"),
        format!("/scan-jobs/{enc}/events"),
    );
    let (job, events) = tokio::try_join!(s.get(&job_path), s.get(&events_path))?;
    let status = st(&job, "Status");
    let finished = matches!(status, "completed" | "failed" | "cancelled");
    let may_retry = s.may(Method::POST, &format!("/scan-jobs/{enc}/retry")) && status == "failed";
    let may_cancel = s.may(Method::POST, &format!("/scan-jobs/{enc}/cancel")) && !finished;
    let content = html! {
        dl.facts {
            dt { "State" } dd { span class=(format!("state state-{status}")) { (status) } }
            dt { "Lane" } dd { (st(&job, "Lane")) " (" (st(&job, "Kind")) ", priority " (int(&job, "Priority")) ")" }
            dt { "Attempts" } dd { (int(&job, "Attempts")) " of " (int(&job, "MaxAttempts")) }
            dt { "Requested" } dd { (when(st(&job, "CreatedAt"))) @if let Some(b) = job["RequestedBy"].as_str() { " by " (b) } }
            @if let Some(d) = job["ResolvedDigest"].as_str() { dt { "Digest" } dd { (short_digest(d)) } }
            @if let Some(e) = job["ErrorMessage"].as_str() { dt { "Error" } dd.bad { (e) } }
            @if let Some(scan) = job["ScanID"].as_str() {
                dt { "Result" }
                dd { (image_link(st(&job, "ImageName"), job["Image"].as_str().and_then(|i| i.rsplit_once(':')).map_or("latest", |(_, t)| t))) " (scan " code { (scan) } ")" }
            }
        }
        @if may_retry || may_cancel {
            div.actions {
                @if may_retry {
                    form method="post" action=(format!("/ui/jobs/{enc}/retry")) { (csrf(&s)) button type="submit" { "Retry" } }
                }
                @if may_cancel {
                    form method="post" action=(format!("/ui/jobs/{enc}/cancel")) { (csrf(&s)) button.danger type="submit" { "Cancel" } }
                }
            }
        }
        h2 { "Audit trail" }
        table.wide {
            thead { tr { th scope="col" { "When" } th.n scope="col" { "Attempt" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "By" } th scope="col" { "Reason" } } }
            tbody {
                @for e in items(&events) {
                    tr { td { (when(st(e, "At"))) } td.n { (int(e, "Attempt")) } td { (st(e, "OldStatus")) } td { (st(e, "NewStatus")) } td { (st(e, "ChangedBy")) } td { (st(e, "Reason")) } }
                }
            }
        }
    };
    Ok(page(
        &s,
        &format!("Job {}", st(&job, "Image")),
        "Jobs",
        content,
    ))
}

pub async fn job_action(
    s: Session,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<super::super::CsrfForm>,
) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    if !matches!(action.as_str(), "retry" | "cancel") {
        return Err(PageError::new(StatusCode::NOT_FOUND, "No such action."));
    }
    let enc = urlencode(&id);
    s.send(Method::POST, &format!("/scan-jobs/{enc}/{action}"), None)
        .await?;
    Ok(Redirect::to(&format!("/ui/jobs/{enc}")).into_response())
}
