//! Secrets from SSM against the emulator: a `SecureString` parameter is read
//! decrypted, and a missing one is refused with its name (never a value).
//! The refusal to start of a function binary is in
//! functions/users/tests/start.rs.

use aws_sdk_ssm::types::ParameterType;
use shared::secrets::{read_parameter, ssm_client};

#[tokio::test]
async fn secure_string_parameters_are_read_decrypted_and_missing_ones_named() {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ssm = ssm_client(&sdk);
    let name = format!("/kobatela/test/{}", uuid::Uuid::new_v4().simple());

    let missing = read_parameter(&ssm, &name).await.unwrap_err();
    assert!(missing.contains("ParameterNotFound"), "{missing}");

    let value = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    ssm.put_parameter()
        .name(&name)
        .value(&value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("the emulator stores the parameter");
    assert_eq!(read_parameter(&ssm, &name).await.unwrap(), value);
}
