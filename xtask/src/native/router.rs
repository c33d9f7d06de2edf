//! The router service: a traefik that reads the Docker socket gets, in the
//! native VM, its routes from the `traefik.*` labels as file provider
//! configuration (`traefik`), its static configuration rewritten to read it,
//! and a default TLS certificate the service runner makes before it starts.

use lkc_contract as contract;

use crate::{
    app::compose::App,
    moby::File,
    native::{
        image::{self, Facts},
        network::Plan,
        traefik, Inputs, Native, NATIVE_DIR, TRAEFIK_DYNAMIC, TRAEFIK_TLS, TRAEFIK_TLS_MADE,
    },
};

/// The traefik service, if one reads the Docker socket: its routes from the
/// labels, as file provider configuration, and its static configuration
/// rewritten to read that file, and the default TLS certificate it is to use
/// made by the service runner before it starts.
pub(super) fn convert_traefik(
    app: &App,
    project: &str,
    plan: &Plan,
    inputs: &Inputs,
    out: &mut Native,
) -> Result<(), Vec<String>> {
    let Some(router) = app.services.iter().find(|s| s.uses_docker_socket) else {
        return Ok(());
    };
    let facts = inputs
        .facts
        .get(app.image_of(router).as_str())
        .cloned()
        .unwrap_or_default();
    let container = out
        .services
        .iter_mut()
        .find(|c| c.name == router.name)
        .expect("converted");
    let command = container.command.clone().unwrap_or_default();
    // traefik's own arguments: after the binary (and any `traefik` subcommand).
    let flags: Vec<String> = command.iter().filter(|a| a.starts_with("--")).cloned().collect();
    let config_flag = flags.iter().find_map(|f| {
        let lower = f.to_ascii_lowercase();
        lower
            .strip_prefix("--configfile=")
            .map(|_| f["--configfile=".len()..].to_string())
    });
    let static_config = if flags.iter().any(|f| f.to_ascii_lowercase().starts_with("--providers.")) {
        traefik::StaticConfig::Args(flags.clone())
    } else {
        let candidates: Vec<String> = match &config_flag {
            Some(path) => vec![path.trim_start_matches('/').to_string()],
            None => {
                let mut c: Vec<String> = image::TRAEFIK_CONFIGS.iter().map(|s| s.to_string()).collect();
                let wd = container.cwd.clone().unwrap_or_default();
                let wd = wd.trim_matches('/');
                if !wd.is_empty() {
                    c.extend(["traefik.yml", "traefik.yaml"].map(|f| format!("{wd}/{f}")));
                }
                c
            }
        };
        // A bind-mounted file of the project wins over the image's.
        let bound = candidates.iter().find_map(|c| {
            router
                .binds
                .iter()
                .find(|b| b.target.trim_start_matches('/') == c)
                .and_then(|b| std::fs::read_to_string(app.dir.join(&b.source)).ok())
                .map(|text| (c.clone(), text))
        });
        let found = bound.or_else(|| {
            candidates
                .iter()
                .find_map(|c| facts.files.get(c).map(|t| (c.clone(), t.clone())))
        });
        match found {
            Some((path, yaml)) => traefik::StaticConfig::File {
                path: format!("/{path}"),
                yaml,
            },
            None => {
                return Err(vec![format!(
                    "service `{}`: reads the Docker socket, but no traefik static configuration was found (looked for {} in the image and its binds, and `--providers.*` flags)",
                    router.name,
                    candidates.join(", ")
                )])
            }
        }
    };
    let backends: Vec<traefik::Backend> = app
        .services
        .iter()
        .map(|s| {
            let mut exposed = inputs
                .facts
                .get(app.image_of(s).as_str())
                .map(Facts::exposed_tcp)
                .unwrap_or_default();
            for text in &s.expose {
                if let Some(p) = text.split('/').next().and_then(|p| p.parse().ok()) {
                    exposed.push(p);
                }
            }
            exposed.sort_unstable();
            exposed.dedup();
            traefik::Backend {
                service: &s.name,
                labels: &s.labels,
                address: plan.address(&s.name).map(|a| a.to_string()).unwrap_or_default(),
                exposed_tcp: exposed,
            }
        })
        .collect();
    let certificate = traefik::DefaultCertificate {
        cert_file: &format!("{TRAEFIK_TLS}/cert.pem"),
        key_file: &format!("{TRAEFIK_TLS}/key.pem"),
    };
    let converted = traefik::convert(
        project,
        &router.name,
        &static_config,
        &backends,
        TRAEFIK_DYNAMIC,
        &certificate,
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| format!("traefik conversion: {e}"))
            .collect::<Vec<_>>()
    })?;
    out.notes
        .extend(converted.notes.iter().map(|n| format!("traefik: {n}")));
    let dir = format!("{NATIVE_DIR}/traefik");
    out.files.push(File::directory(&dir));
    out.files
        .push(File::contents(&format!("{dir}/dynamic.yml"), &converted.dynamic_yaml));
    container.binds.push(format!("/{dir}/dynamic.yml:{TRAEFIK_DYNAMIC}:ro"));
    container.binds.push(format!("{TRAEFIK_TLS_MADE}:{TRAEFIK_TLS}:ro"));
    container
        .annotations
        .insert(contract::DEFAULT_CERTIFICATE.into(), TRAEFIK_TLS_MADE.into());
    match converted.static_config {
        traefik::StaticConfig::File { path, yaml } => {
            out.files.push(File::contents(&format!("{dir}/traefik.yml"), &yaml));
            container.binds.push(format!("/{dir}/traefik.yml:{path}:ro"));
        }
        traefik::StaticConfig::Args(args) => {
            let mut command: Vec<String> = command.into_iter().filter(|a| !a.starts_with("--")).collect();
            command.extend(args);
            container.command = Some(command);
        }
    }
    Ok(())
}
