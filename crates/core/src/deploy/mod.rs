//! Publishing (issue 16): the wire types and pure rules of deployments between the Worker and
//! the VM API. `build.rs`: building a checkpoint into static files and a backend (request,
//! progress events, limits, the static manifest). `service.rs`: the backend of a deployment as a
//! supervised production service (start, health gate, activation, restart policy, status).
//! `record.rs`: a project's deployment records, the publish routes' requests and replies, the
//! publish progress steps and the app-access cookie of private apps.
//! `external.rs`: deploying to Modal (backend) and Netlify (frontend) with the person's tokens.
//! `serve.rs`: serving a published app at the edge (host → app, path → file or backend, headers).
//! `netlify.rs`: deploying the built static files to Netlify with the person's token (Netlify's
//! file-digest deploy: wire types, SHA1 digests, which files to upload, polling and retry rules).

pub mod build;
pub mod external;
pub mod netlify;
pub mod record;
pub mod serve;
pub mod service;
