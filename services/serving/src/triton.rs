//! A client for Triton's gRPC API (KServe v2 with Triton's extensions).
//!
//! One lazily connected HTTP/2 channel is shared by every request (tonic
//! multiplexes streams on it and reconnects after failures); every call
//! carries a deadline; gRPC errors map to API errors (model missing → 404,
//! unavailable → 503 with `retry-after`, invalid argument → 422).

use crate::pb;
use crate::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use futures_util::{Stream, StreamExt};
use llmops_core::ApiError;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone)]
pub struct Triton {
    client: GrpcInferenceServiceClient<Channel>,
    url: String,
}

/// One streamed generation step of a decoupled LLM model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationStep {
    pub text: String,
    /// Empty until the last step.
    pub finish_reason: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Who counted the tokens.
    pub usage_source: crate::tokens::UsageSource,
}

/// Sampling settings sent to the LLM model.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Chat turns `(role, content)`, for backends that template themselves.
    pub messages: Option<Vec<(String, String)>>,
    /// The prompt as the local model gets it (chat template applied).
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
}

pub fn map_status(model: &str, s: &tonic::Status) -> ApiError {
    use tonic::Code;
    let msg: String = s.message().chars().take(300).collect();
    match s.code() {
        Code::NotFound => ApiError::not_found(format!("model `{model}`")),
        Code::Unavailable | Code::Unknown
            if msg.contains("not ready") || s.code() == Code::Unavailable =>
        {
            ApiError::Unavailable {
                dependency: format!("inference backend for `{model}`"),
                retry_after_secs: 2,
            }
        }
        Code::InvalidArgument | Code::OutOfRange => {
            if msg.contains("unknown model") || msg.contains("is not found") {
                ApiError::not_found(format!("model `{model}`"))
            } else {
                ApiError::validation("model", format!("the model refused the request: {msg}"))
            }
        }
        Code::DeadlineExceeded => ApiError::Unavailable {
            dependency: format!("inference backend for `{model}` (deadline exceeded)"),
            retry_after_secs: 2,
        },
        Code::Cancelled => ApiError::BadRequest("request cancelled".into()),
        _ => ApiError::Unavailable {
            dependency: format!("inference backend for `{model}` ({})", s.code()),
            retry_after_secs: 2,
        },
    }
}

fn bytes_tensor(values: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn input(name: &str, datatype: &str, shape: Vec<i64>) -> pb::model_infer_request::InferInputTensor {
    pb::model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    }
}

/// The raw bytes of output `name`.
fn raw_output<'a>(res: &'a pb::ModelInferResponse, name: &str) -> Option<&'a [u8]> {
    let i = res.outputs.iter().position(|o| o.name == name)?;
    res.raw_output_contents.get(i).map(Vec::as_slice)
}

fn first_string(raw: &[u8]) -> String {
    if raw.len() < 4 {
        return String::new();
    }
    let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    raw.get(4..4 + len)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn first_i32(raw: &[u8]) -> i32 {
    raw.get(0..4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

impl Triton {
    /// A client for `url` (`http://host:8001`); connects on first use.
    pub fn new(url: &str) -> Result<Self, ApiError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| ApiError::Internal(format!("triton url: {e}").into()))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(Self {
            client: GrpcInferenceServiceClient::new(endpoint.connect_lazy()),
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn req<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(timeout);
        r
    }

    /// The server process answers. Unlike `server_ready`, this does not
    /// depend on the state of every model in the repository (a tenant's
    /// deployment that is still loading makes Triton "not ready").
    pub async fn server_live(&self) -> Result<bool, tonic::Status> {
        let mut c = self.client.clone();
        Ok(
            c.server_live(Self::req(pb::ServerLiveRequest {}, Duration::from_secs(2)))
                .await?
                .into_inner()
                .live,
        )
    }

    pub async fn server_ready(&self) -> Result<bool, tonic::Status> {
        let mut c = self.client.clone();
        Ok(
            c.server_ready(Self::req(pb::ServerReadyRequest {}, Duration::from_secs(2)))
                .await?
                .into_inner()
                .ready,
        )
    }

    pub async fn model_ready(&self, model: &str) -> Result<bool, tonic::Status> {
        let mut c = self.client.clone();
        Ok(c.model_ready(Self::req(
            pb::ModelReadyRequest {
                name: model.into(),
                version: String::new(),
            },
            Duration::from_secs(2),
        ))
        .await?
        .into_inner()
        .ready)
    }

    pub async fn repository_index(
        &self,
    ) -> Result<Vec<pb::repository_index_response::ModelIndex>, tonic::Status> {
        let mut c = self.client.clone();
        Ok(c.repository_index(Self::req(
            pb::RepositoryIndexRequest {
                repository_name: String::new(),
                ready: false,
            },
            Duration::from_secs(5),
        ))
        .await?
        .into_inner()
        .models)
    }

    pub async fn load(&self, model: &str) -> Result<(), tonic::Status> {
        let mut c = self.client.clone();
        c.repository_model_load(Self::req(
            pb::RepositoryModelLoadRequest {
                repository_name: String::new(),
                model_name: model.into(),
                parameters: Default::default(),
            },
            Duration::from_secs(600),
        ))
        .await?;
        Ok(())
    }

    /// Loads a model from files sent with the request (Triton's override
    /// load): `config` is the model configuration as JSON, `files` map
    /// `1/model.py`-style paths to contents. Works for models that are not
    /// in Triton's repository and needs no shared filesystem.
    pub async fn load_files(
        &self,
        model: &str,
        config_json: String,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<(), tonic::Status> {
        use pb::model_repository_parameter::ParameterChoice;
        let mut parameters = std::collections::HashMap::new();
        parameters.insert(
            "config".to_string(),
            pb::ModelRepositoryParameter {
                parameter_choice: Some(ParameterChoice::StringParam(config_json)),
            },
        );
        for (path, content) in files {
            parameters.insert(
                format!("file:{path}"),
                pb::ModelRepositoryParameter {
                    parameter_choice: Some(ParameterChoice::BytesParam(content)),
                },
            );
        }
        let mut c = self.client.clone().max_encoding_message_size(usize::MAX);
        c.repository_model_load(Self::req(
            pb::RepositoryModelLoadRequest {
                repository_name: String::new(),
                model_name: model.into(),
                parameters,
            },
            Duration::from_secs(600),
        ))
        .await?;
        Ok(())
    }

    pub async fn unload(&self, model: &str) -> Result<(), tonic::Status> {
        let mut c = self.client.clone();
        c.repository_model_unload(Self::req(
            pb::RepositoryModelUnloadRequest {
                repository_name: String::new(),
                model_name: model.into(),
                parameters: Default::default(),
            },
            Duration::from_secs(60),
        ))
        .await?;
        Ok(())
    }

    pub async fn statistics(&self, model: &str) -> Result<Vec<pb::ModelStatistics>, tonic::Status> {
        let mut c = self.client.clone();
        Ok(c.model_statistics(Self::req(
            pb::ModelStatisticsRequest {
                name: model.into(),
                version: String::new(),
            },
            Duration::from_secs(5),
        ))
        .await?
        .into_inner()
        .model_stats)
    }

    /// Sentence embeddings: `(vectors, token count per text)`.
    pub async fn embed(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, Vec<i64>), ApiError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let request = pb::ModelInferRequest {
            model_name: model.into(),
            inputs: vec![input("TEXT", "BYTES", vec![texts.len() as i64])],
            raw_input_contents: vec![bytes_tensor(&refs)],
            ..Default::default()
        };
        let mut c = self.client.clone();
        let res = c
            .model_infer(Self::req(request, Duration::from_secs(60)))
            .await
            .map_err(|s| map_status(model, &s))?
            .into_inner();
        let emb = raw_output(&res, "EMBEDDING")
            .ok_or_else(|| ApiError::Internal("model returned no EMBEDDING".into()))?;
        let tokens = raw_output(&res, "TOKENS")
            .ok_or_else(|| ApiError::Internal("model returned no TOKENS".into()))?;
        let dims = res
            .outputs
            .iter()
            .find(|o| o.name == "EMBEDDING")
            .and_then(|o| o.shape.get(1).copied())
            .unwrap_or(0) as usize;
        if dims == 0 || emb.len() != texts.len() * dims * 4 {
            return Err(ApiError::Internal(
                "EMBEDDING has an unexpected shape".into(),
            ));
        }
        let floats: Vec<f32> = emb
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let vectors = floats.chunks(dims).map(<[f32]>::to_vec).collect();
        let counts = tokens
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        Ok((vectors, counts))
    }

    /// Streams a generation from a decoupled LLM model. Dropping the
    /// stream cancels the request on Triton.
    pub async fn generate(
        &self,
        model: &str,
        g: &Generation,
    ) -> Result<
        impl Stream<Item = Result<GenerationStep, ApiError>> + Send + 'static + use<>,
        ApiError,
    > {
        let stops: Vec<&str> = g.stop.iter().map(String::as_str).collect();
        let mut inputs = vec![
            input("PROMPT", "BYTES", vec![1]),
            input("MAX_TOKENS", "INT32", vec![1]),
            input("TEMPERATURE", "FP32", vec![1]),
            input("TOP_P", "FP32", vec![1]),
        ];
        let mut raw = vec![
            bytes_tensor(&[&g.prompt]),
            (g.max_tokens as i32).to_le_bytes().to_vec(),
            g.temperature.to_le_bytes().to_vec(),
            g.top_p.to_le_bytes().to_vec(),
        ];
        if let Some(seed) = g.seed {
            inputs.push(input("SEED", "INT64", vec![1]));
            raw.push(seed.to_le_bytes().to_vec());
        }
        if !stops.is_empty() {
            inputs.push(input("STOP", "BYTES", vec![stops.len() as i64]));
            raw.push(bytes_tensor(&stops));
        }
        let request = pb::ModelInferRequest {
            model_name: model.into(),
            id: ulid::Ulid::new().to_string(),
            inputs,
            raw_input_contents: raw,
            ..Default::default()
        };
        let mut c = self.client.clone();
        let mut call = tonic::Request::new(futures_util::stream::once(async move { request }));
        call.set_timeout(Duration::from_secs(600));
        let responses = c
            .model_stream_infer(call)
            .await
            .map_err(|s| map_status(model, &s))?
            .into_inner();
        let model = model.to_string();
        Ok(responses.map(move |item| {
            let item = item.map_err(|s| map_status(&model, &s))?;
            if !item.error_message.is_empty() {
                return Err(ApiError::validation(
                    "model",
                    format!(
                        "the model failed: {}",
                        item.error_message.chars().take(300).collect::<String>()
                    ),
                ));
            }
            let res = item
                .infer_response
                .ok_or_else(|| ApiError::Internal("empty stream response".into()))?;
            Ok(GenerationStep {
                text: raw_output(&res, "TEXT")
                    .map(first_string)
                    .unwrap_or_default(),
                finish_reason: raw_output(&res, "FINISH_REASON")
                    .map(first_string)
                    .unwrap_or_default(),
                prompt_tokens: raw_output(&res, "PROMPT_TOKENS")
                    .map(first_i32)
                    .unwrap_or(0)
                    .max(0) as u32,
                completion_tokens: raw_output(&res, "COMPLETION_TOKENS")
                    .map(first_i32)
                    .unwrap_or(0)
                    .max(0) as u32,
                usage_source: crate::tokens::UsageSource::Backend,
            })
        }))
    }
}
