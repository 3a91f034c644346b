//! Helpers shared by the test modules: settings pointing at an emulator, clients, inputs.

use std::collections::BTreeMap;

use hubspot_client::{ClientSettings, HubSpotClient, RateBudget, WriteInput, WriteOutcome};
use hubspot_model::Secret;

pub type TestResult = anyhow::Result<()>;

pub const TOKEN: &str = "pat-na1-test-token-0000";

pub fn settings(base_url: &str) -> ClientSettings {
    ClientSettings {
        base_url: base_url.to_string(),
        timeout_secs: 10,
        ..ClientSettings::new("test", Secret::new(TOKEN))
    }
}

pub fn client_with(settings: ClientSettings) -> HubSpotClient {
    let budget = RateBudget::new(&settings);
    HubSpotClient::new(settings, budget).expect("valid settings")
}

pub fn client(base_url: &str) -> HubSpotClient {
    client_with(settings(base_url))
}

pub fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn contact(i: usize) -> WriteInput {
    WriteInput {
        trace_id: format!("pk-{i}"),
        id: Some(format!("user{i}@example.com")),
        properties: props(&[("firstname", &format!("User {i}"))]),
    }
}

pub fn written_id(o: &WriteOutcome) -> &str {
    match o {
        WriteOutcome::Written { id, .. } => id,
        WriteOutcome::Rejected { code, message, .. } => panic!("expected written, got {code}: {message}"),
    }
}
