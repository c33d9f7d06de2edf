//! rust-app: a small HTTP server on port 8080 (tiny_http, from crates.io),
//! built in the rust stand-in and run on debian:bookworm-slim.

fn main() {
    let server = tiny_http::Server::http("0.0.0.0:8080").expect("listening on port 8080");
    println!("rust-app listening on port 8080");
    for request in server.incoming_requests() {
        let body = format!("hello from rust-app: {} {}\n", request.method(), request.url());
        if let Err(e) = request.respond(tiny_http::Response::from_string(body)) {
            eprintln!("rust-app: answering: {e}");
        }
    }
}
