//! Deploying to the hosts people already use, as pure logic: the route's request, the record
//! of one external deploy (targets in order: Modal for the backend, then Netlify for the
//! frontend, built with `VITE_API_URL` set to the backend Modal answered), the build requests
//! for each (from the template's `deploy.modal` and `publish` recipes), and reading the
//! deployed URL out of `modal deploy`'s output.

use super::build::{BuildRequest, BuildStep};
use crate::manifest::Manifest;
use crate::template::TemplateManifest;
use crate::vault::SecretEnv;
use serde::{Deserialize, Serialize};

/// External deploys a project keeps on record (oldest dropped first).
pub const KEEP_RECORDS: usize = 20;
/// Output lines a record keeps for the person to read.
pub const LOG_LINES: usize = 60;
/// The frontend build's variable naming the separately deployed backend.
pub const API_URL_VAR: &str = "VITE_API_URL";

/// Where a deploy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The backend, with `modal deploy` of the template's `modal_app.py`.
    Modal,
    /// The frontend's static build, by Netlify's file-digest deploy.
    Netlify,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Modal => "modal",
            Target::Netlify => "netlify",
        }
    }
}

/// `POST /projects/{id}/deploy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDeployRequest {
    /// The checkpoint to deploy (default: the head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
    /// Which hosts (default: every one the template has a recipe for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Target>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    /// Not run because a target before it failed.
    Skipped,
}

/// One target of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub target: Target,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What it is doing now, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Netlify: files uploaded of the site's total (only the ones it did not have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One external deploy, as listed and as sent on the socket (`external_deploy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalDeploy {
    /// `x-{n}`.
    pub id: String,
    pub checkpoint: u64,
    pub by: String,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    pub status: Status,
    pub targets: Vec<TargetResult>,
    /// The last output lines and request log (never a secret).
    #[serde(default)]
    pub log: Vec<String>,
}

impl ExternalDeploy {
    pub fn new(n: u64, checkpoint: u64, by: &str, targets: &[Target], now_ms: u64) -> Self {
        ExternalDeploy {
            id: format!("x-{n}"),
            checkpoint,
            by: by.to_string(),
            created_ms: now_ms,
            finished_ms: None,
            status: Status::Running,
            targets: targets
                .iter()
                .map(|t| TargetResult {
                    target: *t,
                    status: Status::Pending,
                    url: None,
                    message: None,
                    uploaded: None,
                    total: None,
                })
                .collect(),
            log: vec![],
        }
    }

    pub fn target_mut(&mut self, t: Target) -> Option<&mut TargetResult> {
        self.targets.iter_mut().find(|r| r.target == t)
    }

    /// Adds output to the kept log (whole lines, the last [`LOG_LINES`]).
    pub fn push_log(&mut self, text: &str) {
        for l in text.lines() {
            self.log.push(l.chars().take(500).collect());
        }
        let n = self.log.len();
        if n > LOG_LINES {
            self.log.drain(..n - LOG_LINES);
        }
    }

    /// Marks `t` failed and every pending target after it skipped; the deploy is failed.
    pub fn fail(&mut self, t: Target, message: String, now_ms: u64) {
        for r in &mut self.targets {
            if r.target == t {
                r.status = Status::Failed;
                r.message = Some(message.clone());
            } else if r.status == Status::Pending {
                r.status = Status::Skipped;
                r.message = Some(format!("not run: {} failed", t.as_str()));
            }
        }
        self.status = Status::Failed;
        self.finished_ms = Some(now_ms);
    }

    /// Marks the deploy done when every target is.
    pub fn finish(&mut self, now_ms: u64) {
        if self.targets.iter().all(|r| r.status == Status::Done) {
            self.status = Status::Done;
        }
        self.finished_ms = Some(now_ms);
    }
}

/// `GET /projects/{id}/deploy`: newest first, and what each target needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalDeploysReply {
    pub deploys: Vec<ExternalDeploy>,
    /// The targets this project's template has a recipe for.
    pub available: Vec<Target>,
    /// The Netlify site this project deploys to, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlify_site: Option<String>,
}

/// The targets `template` can deploy to, in the order they run.
pub fn available(template: &TemplateManifest) -> Vec<Target> {
    let mut t = vec![];
    if template.deploy.contains_key("modal") {
        t.push(Target::Modal);
    }
    if template
        .publish
        .as_ref()
        .is_some_and(|p| p.static_dir.is_some())
    {
        t.push(Target::Netlify);
    }
    t
}

/// The targets to run for `asked` (all available when `None`), in order; an unavailable one
/// is an error naming what the template offers.
pub fn choose(
    template: &TemplateManifest,
    asked: Option<&[Target]>,
) -> Result<Vec<Target>, String> {
    let have = available(template);
    let Some(asked) = asked else {
        if have.is_empty() {
            return Err(format!(
                "template {} has no external deploy recipe (`deploy.modal` or a static `publish`)",
                template.name
            ));
        }
        return Ok(have);
    };
    if asked.is_empty() {
        return Err("targets is empty; name modal and/or netlify".into());
    }
    for t in asked {
        if !have.contains(t) {
            return Err(format!(
                "template {} cannot deploy to {} (it can: {})",
                template.name,
                t.as_str(),
                have.iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut out: Vec<Target> = asked.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The build that runs `modal deploy`: the template's installs under the Modal recipe's
/// folder, then its command (or `command_override`, the operator's `MODAL_DEPLOY_COMMAND`),
/// with the credentials in `secrets` and the app's name in `MODAL_APP_NAME` given to that step
/// alone.
pub fn modal_request(
    template: &TemplateManifest,
    deployment: &str,
    manifest: &Manifest,
    command_override: Option<&str>,
    app_name: &str,
    secrets: SecretEnv,
) -> Option<BuildRequest> {
    let m = template.deploy.get("modal")?;
    let base = template.build_request(deployment, manifest).or_else(|| {
        Some(BuildRequest {
            deployment: deployment.into(),
            manifest: manifest.clone(),
            install: vec![],
            build: vec![],
            static_dir: None,
            backend_dir: None,
            timeout_s: None,
            env: Default::default(),
            secret_env: SecretEnv::default(),
        })
    })?;
    let install = template
        .install
        .values()
        .filter(|i| in_dir(&i.cwd, &m.cwd))
        .map(|i| super::build::InstallStep {
            cwd: i.cwd.clone(),
            command: i.command.clone(),
            when_changed: i.when_changed.clone(),
            outputs: i.outputs.clone(),
        })
        .collect();
    Some(BuildRequest {
        install,
        build: vec![BuildStep {
            cwd: m.cwd.clone(),
            command: command_override
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .unwrap_or(&m.command)
                .to_string(),
        }],
        static_dir: None,
        backend_dir: None,
        env: [("MODAL_APP_NAME".to_string(), app_name.to_string())].into(),
        secret_env: secrets,
        ..base
    })
}

/// Whether folder `a` is `b`, inside it, or contains it (an install there matters to `b`).
fn in_dir(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| y.is_empty() || x == y || x.starts_with(&format!("{y}/"));
    inside(a, b) || inside(b, a)
}

/// The frontend's build for a static host: the publish recipe's installs and build, its
/// static folder, no backend, and `VITE_API_URL` when a backend was deployed first.
pub fn static_request(
    template: &TemplateManifest,
    deployment: &str,
    manifest: &Manifest,
    api_url: Option<&str>,
) -> Option<BuildRequest> {
    let mut r = template.build_request(deployment, manifest)?;
    r.static_dir.as_ref()?;
    r.backend_dir = None;
    if let Some(u) = api_url {
        r.env.insert(API_URL_VAR.into(), u.to_string());
    }
    Some(r)
}

/// The URL `modal deploy` printed for the app's web endpoint: the `=> https://…` of its
/// "Created web function …" (or "web endpoint") line, else the first `https://….modal.run`.
pub fn modal_url(output: &str) -> Option<String> {
    let clean = |u: &str| {
        u.trim()
            .trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '/'))
            .to_string()
    };
    for line in output.lines() {
        let l = line.to_ascii_lowercase();
        if l.contains("web function") || l.contains("web endpoint") {
            if let Some((_, rest)) = line.split_once("=>") {
                let u = rest.split_whitespace().next().unwrap_or("");
                if u.starts_with("https://") {
                    return Some(clean(u));
                }
            }
        }
    }
    output
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .find(|w| w.starts_with("https://") && clean(w).ends_with(".modal.run"))
        .map(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fullstack() -> TemplateManifest {
        TemplateManifest::parse(include_str!(
            "../../../../templates/fullstack/template.json"
        ))
        .unwrap()
    }

    #[test]
    fn modal_output_gives_the_web_url() {
        let out = "✓ Created objects.\n├── 🔨 Created mount /work/app\n└── 🔨 Created web function fastapi_app => https://ws--or-p1-fastapi-app.modal.run\n✓ App deployed in 3.1s! 🎉\n\nView Deployment: https://modal.com/apps/ws/main/deployed/or-p1\n";
        assert_eq!(
            modal_url(out).as_deref(),
            Some("https://ws--or-p1-fastapi-app.modal.run")
        );
        let older = "Created web endpoint for fastapi_app => https://a--b.modal.run (label)";
        assert_eq!(modal_url(older).as_deref(), Some("https://a--b.modal.run"));
        assert_eq!(
            modal_url("app is live at https://x--y.modal.run.").as_deref(),
            Some("https://x--y.modal.run")
        );
        assert_eq!(modal_url("View Deployment: https://modal.com/apps/x"), None);
        assert_eq!(modal_url(""), None);
    }

    #[test]
    fn the_fullstack_template_deploys_modal_then_netlify() {
        let t = fullstack();
        assert_eq!(available(&t), vec![Target::Modal, Target::Netlify]);
        assert_eq!(
            choose(&t, None).unwrap(),
            vec![Target::Modal, Target::Netlify]
        );
        assert_eq!(
            choose(&t, Some(&[Target::Netlify, Target::Modal, Target::Netlify])).unwrap(),
            vec![Target::Modal, Target::Netlify]
        );
        assert!(choose(&t, Some(&[])).is_err());
        let m = Manifest::default();
        let mut env = std::collections::BTreeMap::new();
        env.insert("MODAL_TOKEN_ID".to_string(), "ak-1".to_string());
        let r = modal_request(&t, "d-x1-modal", &m, None, "or-p1", SecretEnv(env)).unwrap();
        assert_eq!(r.env["MODAL_APP_NAME"], "or-p1");
        assert_eq!(r.secret_env.0["MODAL_TOKEN_ID"], "ak-1");
        assert_eq!(
            r.install.len(),
            1,
            "only the backend's install: {:?}",
            r.install
        );
        assert_eq!(r.install[0].cwd, "backend");
        assert_eq!(r.build.len(), 1);
        assert_eq!(r.build[0].cwd, "backend");
        assert!(r.build[0].command.contains("modal deploy modal_app.py"));
        assert_eq!(r.static_dir, None);
        assert_eq!(r.backend_dir, None);
        assert!(!format!("{r:?}").contains("ak-1"));
        r.validate().unwrap();
        let o = modal_request(
            &t,
            "d-x1-modal",
            &m,
            Some("python3 fake.py deploy"),
            "or-p1",
            SecretEnv::default(),
        )
        .unwrap();
        assert_eq!(o.build[0].command, "python3 fake.py deploy");
        let s = static_request(&t, "d-x1-web", &m, Some("https://a.modal.run")).unwrap();
        assert_eq!(s.static_dir.as_deref(), Some("frontend/dist"));
        assert_eq!(s.backend_dir, None);
        assert_eq!(s.env[API_URL_VAR], "https://a.modal.run");
        s.validate().unwrap();
    }

    #[test]
    fn a_failure_skips_what_follows() {
        let mut d = ExternalDeploy::new(3, 7, "u", &[Target::Modal, Target::Netlify], 1);
        assert_eq!(d.id, "x-3");
        d.fail(Target::Modal, "token refused".into(), 2);
        assert_eq!(d.status, Status::Failed);
        assert_eq!(d.targets[1].status, Status::Skipped);
        let mut ok = ExternalDeploy::new(4, 7, "u", &[Target::Netlify], 1);
        ok.target_mut(Target::Netlify).unwrap().status = Status::Done;
        ok.finish(3);
        assert_eq!(ok.status, Status::Done);
        for i in 0..100 {
            ok.push_log(&format!("line {i}\n"));
        }
        assert_eq!(ok.log.len(), LOG_LINES);
        assert_eq!(ok.log.last().unwrap(), "line 99");
    }
}
