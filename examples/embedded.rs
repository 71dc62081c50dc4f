//! An actix-web application with hookbus inside: it mounts the admin API under
//! `/webhooks-admin` and publishes `artifact.completed` through the `Registry` actor
//! whenever `POST /artifacts/{id}/complete` is called.
//!
//! ```sh
//! HOOKBUS_ADMIN_TOKEN=dev-token-0123456789 cargo run --example embedded
//! curl -X POST localhost:8081/artifacts/42/complete
//! ```

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use hookbus::{Config, Hookbus, Publish, Registry, WorkspaceId};

async fn complete_artifact(registry: web::Data<Addr<Registry>>, id: web::Path<u64>) -> HttpResponse {
    let event = Publish::new(WorkspaceId::DEFAULT, "artifact.completed", json!({"artifact_id": *id}));
    match registry.send(event).await {
        Ok(Ok(published)) => HttpResponse::Accepted().json(published),
        Ok(Err(error)) => HttpResponse::UnprocessableEntity().body(error.to_string()),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config {
        dev: true,
        admin_token: std::env::var("HOOKBUS_ADMIN_TOKEN").ok(),
        ..Config::sqlite("embedded-example.db")
    };
    let bus = Hookbus::start(config).await?;
    let registry = web::Data::new(bus.registry());
    let admin = bus.admin_routes();
    HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .route("/artifacts/{id}/complete", web::post().to(complete_artifact))
            .service(web::scope("/webhooks-admin").configure(admin.clone()))
    })
    .bind("127.0.0.1:8081")?
    .run()
    .await?;
    bus.shutdown().await;
    Ok(())
}
