//! Removals against the emulator: records archived 100 per request, pairs unlinked, and only
//! some labels removed from a pair.

use hubspot_client::EndpointKind;
use hubspot_emulator::{Emulator, EmulatorConfig};

use crate::support::{client, TestResult};

#[tokio::test]
async fn archives_250_records_in_3_requests() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let ids: Vec<String> =
        (0..260).map(|i| emu.insert_record("contacts", &[("email", &format!("a{i}@example.com"))])).collect();
    let hs = client(&emu.base_url());
    hs.batch_archive("contacts", &ids[..250]).await?;
    assert_eq!(emu.count_requests("POST", "/crm/objects/2026-03/contacts/batch/archive"), 3);
    assert_eq!(emu.record_count("contacts"), 10);
    // Sending the same removal again is harmless: HubSpot answers 204 for archived ids.
    hs.batch_archive("contacts", &ids[..5]).await?;
    assert_eq!(emu.record_count("contacts"), 10);
    assert_eq!(hs.stats().requests_to(EndpointKind::Archive), 4);
    Ok(())
}

#[tokio::test]
async fn unlinks_pairs_and_removes_only_the_listed_labels() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let contact = emu.insert_record("contacts", &[("email", "a@example.com")]);
    let other = emu.insert_record("contacts", &[("email", "b@example.com")]);
    let acme = emu.insert_record("companies", &[("name", "Acme")]);
    let globex = emu.insert_record("companies", &[("name", "Globex")]);
    let owner = emu.create_association_label("contacts", "companies", "Owner");
    let hs = client(&emu.base_url());
    let types = vec![("HUBSPOT_DEFINED".to_string(), 279), ("USER_DEFINED".to_string(), owner)];
    let inputs: Vec<_> = [(&contact, &acme), (&contact, &globex), (&other, &acme)]
        .iter()
        .enumerate()
        .map(|(i, (f, t))| hubspot_client::AssociationInput {
            trace: i.to_string(),
            from_id: f.to_string(),
            to_id: t.to_string(),
            types: types.clone(),
        })
        .collect();
    hs.batch_associate("contacts", "companies", &inputs).await?;
    assert_eq!(emu.associations("contacts", "companies").len(), 3);

    hs.batch_unlabel("contacts", "companies", &[(contact.clone(), acme.clone(), vec![("USER_DEFINED".into(), owner)])])
        .await?;
    hs.batch_unlink("contacts", "companies", &[(contact.clone(), globex.clone())]).await?;
    let mut left: Vec<(String, String, Vec<u32>)> = emu
        .associations("contacts", "companies")
        .into_iter()
        .map(|a| {
            let mut types = a.type_ids.clone();
            types.sort();
            (a.from_id, a.to_id, types)
        })
        .collect();
    left.sort();
    let mut expected =
        vec![(contact.clone(), acme.clone(), vec![279]), (other.clone(), acme.clone(), vec![279, owner])];
    expected.sort();
    assert_eq!(left, expected, "the label went, the pair stayed; the other pair went whole");
    assert_eq!(emu.count_requests("POST", "/contacts/companies/batch/labels/archive"), 1);
    assert_eq!(emu.count_requests("POST", "/contacts/companies/batch/archive"), 1);
    Ok(())
}
