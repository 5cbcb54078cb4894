//! An OpenAI-compatible server that answers at once (no model), for
//! measuring the gateway's own overhead in `benches/gateway_overhead.sh`.
//! `instant-upstream 127.0.0.1:9099`

use actix_web::{App, HttpResponse, HttpServer, web};

async fn chat(body: web::Json<serde_json::Value>) -> HttpResponse {
    let model = body["model"].as_str().unwrap_or("instant").to_string();
    let chunk = serde_json::json!({
        "id": "chatcmpl-instant", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    });
    let usage = serde_json::json!({
        "id": "chatcmpl-instant", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    });
    if body["stream"].as_bool() == Some(true) {
        let text = format!("data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(text);
    }
    HttpResponse::Ok().json(serde_json::json!({
        "id": "chatcmpl-instant", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9099".into());
    HttpServer::new(|| App::new().route("/v1/chat/completions", web::post().to(chat)))
        .workers(1)
        .bind(addr)?
        .run()
        .await
}
