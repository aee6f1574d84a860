//! ApiVersions (key 18), v0-v4: the first request every client sends.
//!
//! Its response header is always v0. A request at a version we do not support
//! still gets an answer, in the v0 format, with UNSUPPORTED_VERSION and the
//! full list, so the client can retry at a version it finds there.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext, SUPPORTED_APIS};
use crate::protocol::encode_response;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

fn response_body(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|(api, range)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub async fn handle(request: RequestContext) -> HandlerOutcome {
    request.respond(&response_body(0))
}

pub fn unsupported_version_response(correlation_id: i32) -> HandlerOutcome {
    let body = response_body(ResponseError::UnsupportedVersion.code());
    Ok(Some(encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)?))
}
