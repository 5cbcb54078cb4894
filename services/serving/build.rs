//! Generates the Triton (KServe v2) gRPC client from `proto/inference.proto`
//! with a vendored `protoc` (or `$PROTOC`), so no system package is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => std::path::PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    println!("cargo:rerun-if-changed=proto/inference.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_with_config(config, &["proto/inference.proto"], &["proto"])?;
    Ok(())
}
