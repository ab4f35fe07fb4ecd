//! App templates' `template.json`: its types, and the pure logic the platform derives from it
//! (install keys, the order dev processes start in, `{{dev.NAME.port}}` substitution).
//!
//! The Worker embeds the files (`build.rs`, `src/templates.rs`) and does the I/O (installs, dev
//! servers, checks); what a manifest means lives here. `templates/README.md` documents the format.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::deploy::build::{BuildRequest, BuildStep, InstallStep};
use crate::deploy::service::StartBackendRequest;
use crate::manifest::Manifest;

/// A template's `template.json`. Every field is optional in the file; absent ones are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TemplateManifest {
    /// The template's name (its directory under `templates/`).
    #[serde(default)]
    pub name: String,
    /// One line for people choosing a template (`GET /api/templates`).
    #[serde(default)]
    pub description: String,
    /// Marks the template used when a project asks for none.
    #[serde(default)]
    pub default: bool,
    /// `{ dir in the app: template dir relative to this one }`: other templates mounted into
    /// this one. Read at build time by `build.rs` (which parses the JSON itself).
    #[serde(default)]
    pub compose: BTreeMap<String, String>,
    /// Dependency installs by name, run before the dev servers when their inputs changed.
    #[serde(default)]
    pub install: BTreeMap<String, Install>,
    /// Long-running dev processes by name; start them in [`TemplateManifest::dev_order`].
    #[serde(default)]
    pub dev: BTreeMap<String, Dev>,
    /// The dev process the live preview shows.
    #[serde(default)]
    pub preview: Option<String>,
    /// What "the app is healthy" means (typecheck, build, tests), run in order.
    #[serde(default)]
    pub check: Vec<Check>,
    /// Deploy commands by target (`modal`: run by `POST /projects/{id}/deploy`; see
    /// `deploy::external`). They also document
    /// how the generated app deploys.
    #[serde(default)]
    pub deploy: BTreeMap<String, Deploy>,
    /// How the app is published (`POST /projects/{id}/deployments`): build commands, the
    /// static folder and the backend's production command. Absent: the template cannot publish.
    #[serde(default)]
    pub publish: Option<Publish>,
    /// How the agent's system prompt describes this template (`agent::prompt`).
    #[serde(default)]
    pub prompt: PromptSpec,
}

/// The production recipe of a template (`publish` in `template.json`). The build runs the
/// template's `install` entries first (through the dependency cache), then `build` in order,
/// in the project's sandbox, from a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Build commands, in order (`npm run build` in `frontend`).
    #[serde(default)]
    pub build: Vec<Deploy>,
    /// The folder whose files are the static site (`frontend/dist`), served at the edge.
    #[serde(default, deserialize_with = "opt_project_dir")]
    pub static_dir: Option<String>,
    /// The backend, run as a supervised production service. Without a static folder it
    /// answers every path; with one, `/api/*`.
    #[serde(default)]
    pub backend: Option<PublishBackend>,
}

/// The production backend of a `publish` recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBackend {
    /// Directory relative to the project root; `""` is the root.
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    /// The production command (uvicorn without `--reload`), listening on `$PORT`.
    pub command: String,
    /// The environment variable holding the port (default `PORT`).
    #[serde(default)]
    pub port_env: Option<String>,
    /// Answers 2xx once the backend serves (`/api/health`); the deployment goes live only then.
    pub health_path: String,
}

/// A template's own description for the agent's system prompt. Paths are relative to the
/// template's root; in every string `{{dir}}` is where the template sits in the project (`""`,
/// or `"frontend/"` when composed) and `{{cd}}` is `""` or `"cd frontend && "`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PromptSpec {
    /// One line for the template's directory when another template composes it.
    #[serde(default)]
    pub summary: String,
    /// `[path, what it is]` rows of the layout, in the order to show them.
    #[serde(default)]
    pub layout: Vec<(String, String)>,
    /// Paragraphs shown only when this template is the project (a composing template says how
    /// its parts connect instead).
    #[serde(default)]
    pub about: Vec<String>,
    /// "How to work" bullets; a composing template's prompt includes its parts'.
    #[serde(default)]
    pub work: Vec<String>,
    /// Rule bullets; a composing template's prompt includes its parts'.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Paths the app creates when it is installed, built or run (never in the template):
    /// dependencies, build output, the database file. A trailing `/` marks a directory.
    #[serde(default)]
    pub generated: Vec<String>,
}

/// One `install` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Install {
    /// Directory relative to the project root; `""` is the root (see [`project_dir`]).
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    pub command: String,
    /// Project files that decide the dependencies (`package.json`, `requirements.txt`); the
    /// install runs again when one of them changes ([`Install::key`]).
    #[serde(default)]
    pub when_changed: Vec<String>,
    /// What the command produces under `cwd` (`node_modules`, `.venv`); with `when_changed`
    /// it lets the VM API share one install between projects.
    #[serde(default)]
    pub outputs: Vec<String>,
}

/// One `dev` entry: a long-running process (a dev server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Dev {
    /// Directory relative to the project root; `""` is the root (see [`project_dir`]).
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    pub command: String,
    /// The environment variable holding the port to listen on. The VM API always passes the
    /// port as `PORT`, so the platform does not read this; `scripts/test-templates.sh` does
    /// (default `PORT`). Every template uses `PORT`.
    #[serde(default)]
    pub port_env: Option<String>,
    /// A route that answers once the server is up; verification probes it.
    #[serde(default)]
    pub ready_path: Option<String>,
    /// Extra environment; values may hold `{{dev.NAME.port}}` ([`Dev::env_with_ports`]).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Dev processes that must start first (their ports fill this one's `env`).
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// One `check` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Check {
    pub name: String,
    /// Directory relative to the project root; `""` is the root (see [`project_dir`]).
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    pub command: String,
}

/// One `deploy` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Deploy {
    /// Directory relative to the project root; `""` is the root (see [`project_dir`]).
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    pub command: String,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template.json is not valid: {0}")]
    Parse(String),
    #[error("dev process {process:?} depends on {dependency:?}, which is not a dev process of this template (there are: {known})")]
    UnknownDependency {
        process: String,
        dependency: String,
        /// The template's dev processes, comma-separated.
        known: String,
    },
    #[error("dev processes depend on each other in a cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The processes of one cycle, each depending on the next; the first is repeated last.
        cycle: Vec<String>,
    },
}

/// The marker in a dev `env` value that stands for process `name`'s port.
pub fn port_placeholder(name: &str) -> String {
    format!("{{{{dev.{name}.port}}}}")
}

/// Deserializes a template's `cwd`: "." and "./" (how the single-part templates write the
/// project root) become "", a trailing `/` and leading `./` are dropped (`"./frontend/"` is
/// `"frontend"`).
pub fn project_dir<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(normalize_dir(&s))
}

fn opt_project_dir<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| normalize_dir(&s)))
}

fn normalize_dir(s: &str) -> String {
    match s.trim_end_matches('/') {
        "." => String::new(),
        rest => rest.trim_start_matches("./").to_string(),
    }
}

impl TemplateManifest {
    /// The templates this one composes: `(dir in the app, template name)`, the name being the
    /// last segment of the `compose` path (`"../frontend"` is `frontend`).
    pub fn parts(&self) -> Vec<(&str, &str)> {
        self.compose
            .iter()
            .map(|(mount, src)| {
                let name = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
                (mount.as_str(), name)
            })
            .collect()
    }

    /// Parses a `template.json`.
    pub fn parse(json: &str) -> Result<TemplateManifest, TemplateError> {
        serde_json::from_str(json).map_err(|e| TemplateError::Parse(e.to_string()))
    }

    /// The dev processes in the order to start them: every process after the ones it
    /// `depends_on`, and otherwise by name (of the processes whose dependencies have started,
    /// the first by name goes next). Errors name an unknown dependency or a cycle.
    pub fn dev_order(&self) -> Result<Vec<&str>, TemplateError> {
        // Each process's dependencies that have not started yet.
        let mut waiting: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, d) in &self.dev {
            let mut deps = BTreeSet::new();
            for dep in &d.depends_on {
                if !self.dev.contains_key(dep) {
                    return Err(TemplateError::UnknownDependency {
                        process: name.clone(),
                        dependency: dep.clone(),
                        known: self
                            .dev
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                deps.insert(dep.as_str());
            }
            waiting.insert(name.as_str(), deps);
        }
        let mut order = Vec::with_capacity(waiting.len());
        while let Some(next) = waiting
            .iter()
            .find(|(_, deps)| deps.is_empty())
            .map(|(n, _)| *n)
        {
            waiting.remove(next);
            for deps in waiting.values_mut() {
                deps.remove(next);
            }
            order.push(next);
        }
        if waiting.is_empty() {
            return Ok(order);
        }
        // Every process left waits on another one left: follow the first such dependency
        // until a process repeats.
        let mut path: Vec<&str> = Vec::new();
        let mut at = *waiting.keys().next().expect("not empty");
        while !path.contains(&at) {
            path.push(at);
            at = waiting[at]
                .iter()
                .next()
                .expect("a process left waits on one");
        }
        let start = path.iter().position(|p| *p == at).expect("repeated");
        let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
        cycle.push(at.to_string());
        Err(TemplateError::Cycle { cycle })
    }
}

impl TemplateManifest {
    /// The build request of deployment `deployment` of a checkpoint with `manifest`: the
    /// template's installs (in name order, as the preview runs them) and its `publish` recipe.
    /// `None` when the template has no `publish` block.
    pub fn build_request(&self, deployment: &str, manifest: &Manifest) -> Option<BuildRequest> {
        let p = self.publish.as_ref()?;
        Some(BuildRequest {
            deployment: deployment.to_string(),
            manifest: manifest.clone(),
            install: self
                .install
                .values()
                .map(|i| InstallStep {
                    cwd: i.cwd.clone(),
                    command: i.command.clone(),
                    when_changed: i.when_changed.clone(),
                    outputs: i.outputs.clone(),
                })
                .collect(),
            build: p
                .build
                .iter()
                .map(|b| BuildStep {
                    cwd: b.cwd.clone(),
                    command: b.command.clone(),
                })
                .collect(),
            static_dir: p.static_dir.clone(),
            backend_dir: p
                .backend
                .as_ref()
                .map(|b| b.cwd.clone())
                .filter(|d| !d.is_empty()),
            timeout_s: None,
            env: Default::default(),
            secret_env: Default::default(),
        })
    }

    /// How to start the deployment's backend, when the recipe has one.
    pub fn start_request(&self) -> Option<StartBackendRequest> {
        let b = self.publish.as_ref()?.backend.as_ref()?;
        Some(StartBackendRequest {
            backend_dir: b.cwd.clone(),
            command: b.command.clone(),
            port_env: b.port_env.clone().unwrap_or_else(|| "PORT".into()),
            health_path: b.health_path.clone(),
            env: BTreeMap::new(),
            health_timeout_s: crate::deploy::service::DEFAULT_HEALTH_TIMEOUT_S,
        })
    }
}

impl Install {
    /// What decides whether this install must run again: the sha256 of each `when_changed`
    /// file in `manifest`, in order, joined with `,` (`-` for a missing file). Equal keys mean
    /// the last install still holds; no `when_changed` files give `""`.
    pub fn key(&self, manifest: &Manifest) -> String {
        self.when_changed
            .iter()
            .map(|p| {
                manifest
                    .files
                    .get(p)
                    .map(|e| e.sha256.as_str())
                    .unwrap_or("-")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Dev {
    /// `env` with each `{{dev.NAME.port}}` replaced by `ports[NAME]`. A placeholder for a
    /// process not in `ports` stays as it is.
    pub fn env_with_ports(&self, ports: &BTreeMap<String, u64>) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                for (name, port) in ports {
                    v = v.replace(&port_placeholder(name), &port.to_string());
                }
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTEND: &str = include_str!("../../../templates/frontend/template.json");
    const BACKEND: &str = include_str!("../../../templates/backend/template.json");
    const FULLSTACK: &str = include_str!("../../../templates/fullstack/template.json");

    fn all() -> [(&'static str, TemplateManifest); 3] {
        [
            ("frontend", TemplateManifest::parse(FRONTEND).unwrap()),
            ("backend", TemplateManifest::parse(BACKEND).unwrap()),
            ("fullstack", TemplateManifest::parse(FULLSTACK).unwrap()),
        ]
    }

    fn dev(deps: &[&str]) -> Dev {
        Dev {
            command: "run".into(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            ..Dev::default()
        }
    }

    fn with_dev(entries: &[(&str, &[&str])]) -> TemplateManifest {
        TemplateManifest {
            dev: entries
                .iter()
                .map(|(n, deps)| (n.to_string(), dev(deps)))
                .collect(),
            ..TemplateManifest::default()
        }
    }

    #[test]
    fn the_real_templates_parse() {
        for (name, t) in all() {
            assert_eq!(t.name, name);
            assert!(!t.description.is_empty(), "{name}");
            assert!(!t.dev.is_empty() && !t.install.is_empty() && !t.check.is_empty());
            let preview = t.preview.as_deref().unwrap();
            assert!(t.dev.contains_key(preview), "{name}: preview {preview}");
            // The VM API always passes the port as PORT.
            for (p, d) in &t.dev {
                assert_eq!(d.port_env.as_deref(), Some("PORT"), "{name}.{p}");
                assert!(d.ready_path.is_some(), "{name}.{p}");
            }
            for (i, inst) in &t.install {
                assert!(!inst.when_changed.is_empty(), "{name}.{i}");
                assert!(!inst.outputs.is_empty(), "{name}.{i}");
            }
        }
        let [(_, fe), (_, be), (_, fs)] = all();
        assert!(fs.default && !fe.default && !be.default);
        assert_eq!(
            fs.compose,
            BTreeMap::from([
                ("backend".into(), "../backend".into()),
                ("frontend".into(), "../frontend".into())
            ])
        );
        assert!(fe.compose.is_empty());
        assert_eq!(fs.deploy["modal"].cwd, "backend");
        assert!(be.deploy["modal"]
            .command
            .ends_with(".venv/bin/modal deploy modal_app.py"));
        assert!(fe.deploy.is_empty());
        assert_eq!(
            fs.check.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["typecheck", "build", "pytest"]
        );
    }

    #[test]
    fn every_template_publishes_with_a_production_backend() {
        let [(_, fe), (_, be), (_, fs)] = all();
        let m = Manifest::default();
        let r = fs.build_request("d-1", &m).unwrap();
        r.validate().unwrap();
        assert_eq!(r.static_dir.as_deref(), Some("frontend/dist"));
        assert_eq!(r.backend_dir.as_deref(), Some("backend"));
        assert_eq!(r.build[0].command, "npm run build");
        assert_eq!(r.build[0].cwd, "frontend");
        // Every install runs through the dependency cache, as the preview's do.
        assert_eq!(r.install.len(), 2);
        assert!(r.install.iter().all(|i| !i.outputs.is_empty()));
        let start = fs.start_request().unwrap();
        start.validate().unwrap();
        assert_eq!(start.health_path, "/api/health");
        assert_eq!(start.backend_dir, "backend");
        // Production: no reloader watching files.
        assert!(!start.command.contains("--reload"), "{}", start.command);
        let r = be.build_request("d-1", &m).unwrap();
        r.validate().unwrap();
        assert_eq!(r.static_dir, None);
        assert_eq!(r.backend_dir, None, "the backend is the project root");
        assert!(r.build.is_empty());
        assert_eq!(be.start_request().unwrap().backend_dir, "");
        let r = fe.build_request("d-1", &m).unwrap();
        r.validate().unwrap();
        assert_eq!(r.static_dir.as_deref(), Some("dist"));
        assert!(fe.start_request().is_none());
        assert!(TemplateManifest::default()
            .build_request("d-1", &m)
            .is_none());
    }

    #[test]
    fn a_publish_block_with_an_unknown_key_is_refused() {
        let e = TemplateManifest::parse(r#"{"publish": {"static": "dist"}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let t = TemplateManifest::parse(r#"{"publish": {"static_dir": "./web/dist/"}}"#).unwrap();
        assert_eq!(t.publish.unwrap().static_dir.as_deref(), Some("web/dist"));
    }

    #[test]
    fn dot_means_the_project_root() {
        let [(_, fe), (_, be), (_, fs)] = all();
        assert_eq!(fe.install["web"].cwd, "");
        assert_eq!(fe.dev["web"].cwd, "");
        assert!(fe.check.iter().all(|c| c.cwd.is_empty()));
        assert_eq!(be.install["api"].cwd, "");
        assert_eq!(be.deploy["modal"].cwd, "");
        assert_eq!(fs.install["web"].cwd, "frontend");
        assert_eq!(fs.dev["api"].cwd, "backend");
        for (raw, want) in [
            (".", ""),
            ("./", ""),
            ("", ""),
            ("frontend", "frontend"),
            ("./frontend/", "frontend"),
            ("frontend/src/", "frontend/src"),
        ] {
            let c: Check = serde_json::from_value(
                serde_json::json!({"name": "n", "cwd": raw, "command": "c"}),
            )
            .unwrap();
            assert_eq!(c.cwd, want, "{raw:?}");
        }
        // An absent cwd is the root too.
        let c: Check = serde_json::from_str(r#"{"name": "n", "command": "c"}"#).unwrap();
        assert_eq!(c.cwd, "");
    }

    #[test]
    fn install_keys_follow_the_when_changed_files() {
        let [(_, fe), _, (_, fs)] = all();
        let m = Manifest::of(&[
            ("frontend/package.json", b"{}"),
            ("frontend/package-lock.json", b"{\"lock\":1}"),
            ("package.json", b"{}"),
        ]);
        let sha = |p: &str| m.files[p].sha256.clone();
        assert_eq!(
            fs.install["web"].key(&m),
            format!(
                "{},{}",
                sha("frontend/package.json"),
                sha("frontend/package-lock.json")
            )
        );
        // A missing file is "-".
        assert_eq!(fs.install["api"].key(&m), "-");
        assert_eq!(
            fe.install["web"].key(&m),
            format!("{},-", sha("package.json"))
        );
        // A changed input changes the key.
        let m2 = Manifest::of(&[("frontend/package.json", b"{\"x\":1}")]);
        assert_ne!(fs.install["web"].key(&m2), fs.install["web"].key(&m));
        assert_eq!(Install::default().key(&m), "");
    }

    #[test]
    fn dev_processes_start_after_their_dependencies() {
        let [(_, fe), (_, be), (_, fs)] = all();
        assert_eq!(fs.dev_order().unwrap(), ["api", "web"]);
        assert_eq!(fe.dev_order().unwrap(), ["web"]);
        assert_eq!(be.dev_order().unwrap(), ["api"]);
        assert_eq!(
            TemplateManifest::default().dev_order().unwrap(),
            Vec::<&str>::new()
        );

        // A dependency sorting after its dependent by name still goes first; ties go by name.
        let t = with_dev(&[
            ("a", &["z"]),
            ("b", &[]),
            ("c", &["a", "b"]),
            ("z", &["b", "b"]),
        ]);
        assert_eq!(t.dev_order().unwrap(), ["b", "z", "a", "c"]);
        let t = with_dev(&[("web", &["api", "db"]), ("api", &["db"]), ("db", &[])]);
        assert_eq!(t.dev_order().unwrap(), ["db", "api", "web"]);
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_errors() {
        let t = with_dev(&[("api", &[]), ("web", &["apii"])]);
        let e = t.dev_order().unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownDependency {
                process: "web".into(),
                dependency: "apii".into(),
                known: "api, web".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "dev process \"web\" depends on \"apii\", which is not a dev process of this template (there are: api, web)"
        );

        let t = with_dev(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]);
        let e = t.dev_order().unwrap_err();
        assert_eq!(
            e,
            TemplateError::Cycle {
                cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert_eq!(
            e.to_string(),
            "dev processes depend on each other in a cycle: a -> b -> c -> a"
        );

        // A process waiting behind a cycle is not part of it.
        let t = with_dev(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"])]);
        assert_eq!(
            t.dev_order().unwrap_err(),
            TemplateError::Cycle {
                cycle: vec!["b".into(), "c".into(), "b".into()]
            }
        );
        let t = with_dev(&[("self", &["self"])]);
        assert_eq!(
            t.dev_order().unwrap_err().to_string(),
            "dev processes depend on each other in a cycle: self -> self"
        );
    }

    #[test]
    fn ports_fill_the_dev_env() {
        let [_, _, (_, fs)] = all();
        let web = &fs.dev["web"];
        let ports = BTreeMap::from([("api".to_string(), 41234u64)]);
        assert_eq!(
            web.env_with_ports(&ports),
            BTreeMap::from([("BACKEND_PORT".to_string(), "41234".to_string())])
        );
        // Not started yet: the placeholder stays.
        assert_eq!(
            web.env_with_ports(&BTreeMap::new())["BACKEND_PORT"],
            "{{dev.api.port}}"
        );
        assert!(fs.dev["api"].env_with_ports(&ports).is_empty());

        let d = Dev {
            env: BTreeMap::from([(
                "URLS".to_string(),
                "http://127.0.0.1:{{dev.a.port}},http://127.0.0.1:{{dev.b.port}}/{{dev.a.port}}"
                    .to_string(),
            )]),
            ..Dev::default()
        };
        let ports = BTreeMap::from([("a".to_string(), 1u64), ("b".to_string(), 2)]);
        assert_eq!(
            d.env_with_ports(&ports)["URLS"],
            "http://127.0.0.1:1,http://127.0.0.1:2/1"
        );
        assert_eq!(port_placeholder("api"), "{{dev.api.port}}");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = TemplateManifest::parse(r#"{"dev": {"web": {"cwd": "."}}}"#).unwrap_err();
        assert!(matches!(&e, TemplateError::Parse(m) if m.contains("missing field `command`")));
        assert!(TemplateManifest::parse("not json").is_err());
        assert_eq!(
            TemplateManifest::parse("{}").unwrap(),
            TemplateManifest::default()
        );
    }
}
