//! The Dashboards pages: the list (with an import box and the offer of the default pack), a
//! dashboard with its time picker, facet filters and pages of widgets, its YAML editor, and its
//! export.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use crate::query::dashboards::{self, pack, spec::Dashboard, View, WidgetView};
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Admin, Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use crate::ui::{check_csrf, UiSession};
use lookout_store::{dashboards as dstore, tenancy};

/// The time picker's ranges: (query value, label, ms).
const RANGES: &[(&str, &str, i64)] = &[
    ("30m", "30 minutes", 1_800_000),
    ("1h", "1 hour", 3_600_000),
    ("6h", "6 hours", 21_600_000),
    ("1d", "1 day", 86_400_000),
    ("7d", "7 days", 604_800_000),
    ("30d", "30 days", 2_592_000_000),
];

#[derive(Template)]
#[template(path = "dashboards.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    items: Vec<(String, String, String)>,
    offer_pack: bool,
    /// Escalation policies the pack's alert policies may page: (id, name).
    escalation_policies: Vec<(i64, String)>,
    message: String,
}

async fn list_page(state: &AppState, ctx: PageCtx, message: String) -> UiResult {
    let rows = dashboards::list(state.store()).await?;
    let items = rows
        .iter()
        .map(|r| {
            let pages = r.spec["pages"].as_array().map_or(0, Vec::len);
            let widgets: usize = r.spec["pages"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|x| x["widgets"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            (
                r.slug.clone(),
                r.name.clone(),
                format!(
                    "{pages} page(s), {widgets} widgets{}",
                    r.managed_by
                        .as_ref()
                        .map(|m| format!(" · {m}"))
                        .unwrap_or_default()
                ),
            )
        })
        .collect();
    let offer_pack = !pack::installed(state.store()).await;
    let escalation_policies = if offer_pack {
        let org = lookout_store::tenancy::default_org(state.store()).await?;
        lookout_store::alerting::spec_list(
            state.store(),
            lookout_store::alerting::SpecTable::EscalationPolicies,
            org.id,
        )
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect()
    } else {
        Vec::new()
    };
    Ok(render(&ListPage {
        title: "Dashboards".into(),
        ctx,
        items,
        offer_pack,
        escalation_policies,
        message,
    }))
}

/// `GET /dashboards`.
pub async fn list(State(state): State<AppState>, page: Page) -> UiResult {
    list_page(&state, page.ctx, String::new()).await
}

/// A form with its CSRF token and YAML.
#[derive(Debug, Deserialize)]
pub struct YamlForm {
    pub csrf: String,
    #[serde(default)]
    pub yaml: String,
}

/// `POST /dashboards` (import or create from YAML).
pub async fn import(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<YamlForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let saved = match Dashboard::from_yaml(&f.yaml) {
        Ok(d) => dashboards::save(state.store(), &d, None)
            .await
            .map(|_| d.slug()),
        Err(e) => Err(e),
    };
    match saved {
        Ok(slug) => Ok(Redirect::to(&format!("/dashboards/{slug}")).into_response()),
        Err(e) => list_page(&state, form.layout(&state).await?, e).await,
    }
}

/// The pack form: its CSRF token and the escalation policy to page (id; empty: the default,
/// `none`: nobody).
#[derive(Debug, Deserialize)]
pub struct PackForm {
    pub csrf: String,
    #[serde(default)]
    pub escalation_policy: Option<String>,
}

/// `POST /dashboards/pack` (install golden-signals).
pub async fn install_pack(
    State(state): State<AppState>,
    page: Page<Admin>,
    Form(f): Form<PackForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let escalation = pack::Escalation::parse(f.escalation_policy.as_deref());
    let message = match pack::install_with(state.store(), "golden-signals", &escalation).await {
        Ok(i) => {
            let pages = match &i.escalation_policy {
                Some(ep) => format!("Its policies page {:?}.", ep.name),
                None => "Its policies page nobody yet.".into(),
            };
            let notes: Vec<&str> = i
                .overlaps
                .iter()
                .chain(&i.warnings)
                .map(String::as_str)
                .collect();
            format!(
                "Installed: {} alert policies, {} runbooks, {} dashboards. {pages}{}{}",
                i.policies_created.len(),
                i.runbooks_created.len(),
                i.dashboards_created.len(),
                if notes.is_empty() { "" } else { " Note: " },
                notes.join("; ")
            )
        }
        Err(e) => e.to_string(),
    };
    list_page(&state, page.ctx, message).await
}

/// A filter as the page shows it.
pub struct FilterView {
    pub attribute: String,
    pub param: String,
    pub value: String,
    pub options: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    title: String,
    ctx: PageCtx,
    slug: String,
    name: String,
    description: String,
    range: String,
    ranges: Vec<(String, String, bool)>,
    tabs: Vec<(usize, String, bool)>,
    filters: Vec<FilterView>,
    widgets: Vec<WidgetView>,
    query_string: String,
}

async fn load(
    state: &AppState,
    slug: &str,
) -> Result<Option<(dstore::DashboardRow, Dashboard)>, String> {
    let org = tenancy::default_org(state.store())
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = dstore::by_slug(state.store(), org.id, slug)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let d: Dashboard = serde_json::from_value(row.spec.clone()).map_err(|e| e.to_string())?;
    Ok(Some((row, d)))
}

/// `GET /dashboards/{slug}?range=1h&page=0&f.appName=checkout`.
pub async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> UiResult {
    let (_, d) = load(&state, &slug)
        .await
        .map_err(UiError::internal)?
        .ok_or(UiError::NotFound)?;
    let range = params.get("range").map_or("1h", String::as_str);
    let span = RANGES
        .iter()
        .find(|r| r.0 == range)
        .map_or(3_600_000, |r| r.2);
    let page_index = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        .min(d.pages.len() - 1);
    let now = lookout_core::time::now_ms();
    let projects = tenancy::project_ids(state.store()).await?;
    let chosen: Vec<(String, String)> = d
        .filters
        .iter()
        .filter_map(|f| {
            let v = params.get(&format!("f.{}", f.attribute))?.trim();
            (!v.is_empty()).then(|| (f.attribute.clone(), v.to_string()))
        })
        .collect();
    let view = View {
        since: now - span,
        until: now,
        filters: &chosen,
    };
    let mut filters = Vec::new();
    for f in &d.filters {
        let options = match &f.values_from {
            Some(q) => {
                let open = View {
                    since: now - span,
                    until: now,
                    filters: &[],
                };
                dashboards::filter_values(state.store(), &projects, q, &open, now).await
            }
            None => Vec::new(),
        };
        filters.push(FilterView {
            attribute: f.attribute.clone(),
            param: format!("f.{}", f.attribute),
            value: chosen
                .iter()
                .find(|c| c.0 == f.attribute)
                .map(|c| c.1.clone())
                .unwrap_or_default(),
            options,
        });
    }
    let mut widgets = Vec::new();
    for w in &d.pages[page_index].widgets {
        widgets.push(dashboards::run_widget(&state, &projects, w, &view, now).await);
    }
    let keep: String = chosen
        .iter()
        .map(|(a, v)| {
            format!(
                "&f.{}={}",
                url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>(),
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    Ok(render(&DashboardPage {
        title: format!("{} · Dashboards", d.name),
        ctx,
        slug: slug.clone(),
        name: d.name.clone(),
        description: d.description.clone(),
        ranges: RANGES
            .iter()
            .map(|r| (r.0.to_string(), r.1.to_string(), r.0 == range))
            .collect(),
        range: range.to_string(),
        tabs: d
            .pages
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.name.clone(), i == page_index))
            .collect(),
        filters,
        widgets,
        query_string: keep,
    }))
}

#[derive(Template)]
#[template(path = "dashboard_edit.html")]
struct EditPage {
    title: String,
    ctx: PageCtx,
    slug: String,
    yaml: String,
    message: String,
}

/// `GET /dashboards/{slug}/edit`.
pub async fn edit(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(slug): Path<String>,
) -> UiResult {
    let (_, d) = load(&state, &slug)
        .await
        .map_err(UiError::internal)?
        .ok_or(UiError::NotFound)?;
    Ok(render(&EditPage {
        title: format!("Edit {}", d.name),
        ctx,
        slug,
        yaml: d.to_yaml(),
        message: String::new(),
    }))
}

/// `POST /dashboards/{slug}/edit`.
pub async fn save(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(slug): Path<String>,
    Form(f): Form<YamlForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let (old, _) = load(&state, &slug)
        .await
        .map_err(UiError::internal)?
        .ok_or(UiError::NotFound)?;
    let result = match Dashboard::from_yaml(&f.yaml) {
        Ok(d) => {
            let mut d = d;
            // The slug stays with the page being edited.
            d.slug = Some(slug.clone());
            dashboards::save(state.store(), &d, old.managed_by.as_deref())
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/dashboards/{slug}")).into_response()),
        // The form again with the reason, as the other UI forms answer.
        Err(message) => Ok(render(&EditPage {
            title: "Edit dashboard".into(),
            ctx: form.layout(&state).await?,
            slug,
            yaml: f.yaml,
            message,
        })),
    }
}

/// `GET /dashboards/{slug}/export.yaml`.
pub async fn export(
    State(state): State<AppState>,
    UiSession(_s): UiSession,
    Path(slug): Path<String>,
) -> UiResult {
    let (_, d) = load(&state, &slug)
        .await
        .map_err(UiError::internal)?
        .ok_or(UiError::NotFound)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/yaml; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{slug}.yaml\""),
            ),
        ],
        d.to_yaml(),
    )
        .into_response())
}
