//! `bench-hello PORT WORKERS`: the HTTP ceiling for `bench/bench.py`. Same server stack as the
//! bridge (actix-web 4, no default features), one route, `GET`/`POST /hello`, a short body.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("hello")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8090);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    HttpServer::new(|| {
        App::new().service(
            web::resource("/hello")
                .route(web::get().to(hello))
                .route(web::post().to(hello)),
        )
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
