use super::*;

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn dms_insert(id: i64) -> Value {
    json!({"data": {"id": id, "pipeline_uuid": "p", "status": "RUNNING"},
           "metadata": {"timestamp": "2026-11-30T13:30:00.1Z", "record-type": "data", "operation": "insert",
                        "schema-name": "public", "table-name": "pipeline_run", "transaction-id": id,
                        "commit-timestamp": "2026-11-30T13:30:00Z",
                        "stream-position": "00000000/019E1260.1.00000000/019E1260"}})
}

fn kinesis(records: &[(&str, String)]) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|(seq, data)| {
            json!({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "public.pipeline_run",
                               "sequenceNumber": seq, "data": data, "approximateArrivalTimestamp": 1764509400.5},
                   "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                   "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                   "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dms"})
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn sqs(arn: &str, bodies: &[(&str, &str)]) -> String {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "h", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
                   "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs", "eventSourceARN": arn,
                   "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records }).to_string()
}

#[test]
fn triggers_are_told_apart() {
    assert_eq!(trigger(&kinesis(&[("1", b64(&dms_insert(1)))])), Some(Trigger::Kinesis));
    assert_eq!(trigger(&sqs("arn:aws:sqs:us-east-1:1:q", &[("m", "{}")])), Some(Trigger::Sqs));
    let kafka = json!({"eventSource": "aws:kafka", "records": {"t-0": []}}).to_string();
    assert_eq!(trigger(&kafka), Some(Trigger::Kafka));
    let kafka = json!({"eventSource": "SelfManagedKafka", "records": {}}).to_string();
    assert_eq!(trigger(&kafka), Some(Trigger::Kafka));
    // HTTP events and direct invocations are not batches
    for other in [
        json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "POST"}}, "body": "{}"}),
        json!({"httpMethod": "POST", "path": "/", "body": "{}"}),
        json!({"specversion": "1.0", "data": {"Records": []}}),
        json!({"Records": [{"eventSource": "aws:s3"}]}),
        json!({"Records": "x"}),
        json!({"eventSource": "aws:kafka"}),
        json!([1, 2]),
    ] {
        assert_eq!(trigger(&other.to_string()), None, "{other}");
    }
}

#[test]
fn kinesis_items_are_sequence_numbers_and_bad_items_fail_alone() {
    let payload = kinesis(&[
        ("100", b64(&dms_insert(1))),
        ("101", "!!not base64".into()),
        ("102", b64(&json!({"no": "record"}))),
        ("103", b64(&dms_insert(2))),
    ]);
    let batch = decode_batch(Trigger::Kinesis, &payload).unwrap();
    assert_eq!(batch.shape.items, ["100", "101", "102", "103"]);
    assert_eq!(batch.delivery.format, DeliveryFormat::LambdaKinesis);
    assert_eq!(batch.delivery.meta.subscription.as_deref(), Some("arn:aws:kinesis:us-east-1:123456789012:stream/dms"));
    let r = &batch.delivery.records;
    assert!(r[0].record.is_ok());
    assert_eq!(r[1].record.as_ref().unwrap_err().field.as_deref(), Some("Records[1]"));
    assert!(r[2].record.is_err());
    assert_eq!(r[3].record.as_ref().unwrap().uuid.as_deref().map(|u| u.starts_with("dms:")), Some(true));
    // only the first failed sequence number: Lambda retries it and everything after it
    let answer = batch.shape.response(&["101".into(), "102".into()]).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "101"}]}));
    assert_eq!(batch.shape.response(&[]).unwrap(), json!({"batchItemFailures": []}));
}

#[test]
fn sqs_bodies_are_dms_or_datastream_or_pubsub() {
    let datastream = json!({"uuid": "u-1", "source_timestamp": "2026-11-30T13:30:00Z", "read_method": "postgres-cdc-wal",
                            "source_metadata": {"table": "pipeline_run"}, "payload": {"id": 1, "status": "RUNNING"}});
    let push = json!({"message": {"data": b64(&datastream), "messageId": "p-1"}, "subscription": "s"});
    let dms = dms_insert(3).to_string();
    let (ds, push) = (datastream.to_string(), push.to_string());
    let payload = sqs(
        "arn:aws:sqs:us-east-1:123456789012:dms",
        &[("m-1", &dms), ("m-2", &ds), ("m-3", &push), ("m-4", "not json"), ("m-5", "{\"x\":1}")],
    );
    let batch = decode_batch(Trigger::Sqs, &payload).unwrap();
    assert!(!batch.shape.fifo);
    let r = &batch.delivery.records;
    assert_eq!(r[0].record.as_ref().unwrap().read_method.as_deref(), Some(dms::READ_METHOD_CDC));
    assert_eq!(r[1].record.as_ref().unwrap().uuid.as_deref(), Some("u-1"));
    assert_eq!(r[2].record.as_ref().unwrap().uuid.as_deref(), Some("u-1"), "a Pub/Sub push body");
    assert_eq!(r[3].record.as_ref().unwrap_err().field.as_deref(), Some("body"));
    assert!(r[4].record.is_err());
    let answer = batch.shape.response(&["m-2".into(), "m-4".into()]).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-4"}]}));
}

#[test]
fn sqs_fifo_retries_from_the_first_failure_on() {
    let payload = sqs("arn:aws:sqs:us-east-1:123456789012:dms.fifo", &[("a", "{}"), ("b", "{}"), ("c", "{}")]);
    let batch = decode_batch(Trigger::Sqs, &payload).unwrap();
    assert!(batch.shape.fifo);
    let answer = batch.shape.response(&["b".into()]).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}));
}

#[test]
fn kafka_items_are_partition_and_offset() {
    let rec = |offset: i64, value: Option<String>| {
        json!({"topic": "dms.pipeline_run", "partition": 1, "offset": offset, "timestamp": 1764509400000i64,
               "timestampType": "CREATE_TIME", "key": null, "value": value, "headers": []})
    };
    let payload = json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:us-east-1:1:cluster/c/x",
        "bootstrapServers": "b-1:9092",
        "records": {"dms.pipeline_run-1": [rec(7, Some(b64(&dms_insert(4)))), rec(8, None), rec(9, Some("%%".into())),
                                           {"offset": 10, "partition": "bad"}]}})
    .to_string();
    let batch = decode_batch(Trigger::Kafka, &payload).unwrap();
    assert_eq!(
        batch.shape.items,
        ["dms.pipeline_run-1@7", "dms.pipeline_run-1@8", "dms.pipeline_run-1@9", "dms.pipeline_run-1@10"]
    );
    let r = &batch.delivery.records;
    assert!(r[0].record.is_ok());
    assert_eq!(r[1].record.as_ref().unwrap_err().kind, crate::decode::DecodeErrorKind::NotAChange, "a tombstone");
    assert_eq!(r[2].record.as_ref().unwrap_err().field.as_deref(), Some("value"));
    assert_eq!(r[3].record.as_ref().unwrap_err().field.as_deref(), Some("records.dms.pipeline_run-1[3]"));
    let answer = batch.shape.response(&["dms.pipeline_run-1@9".into(), "dms.pipeline_run-1@10".into()]).unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": "dms.pipeline_run-1", "offset": 9}},
            {"itemIdentifier": {"partition": "dms.pipeline_run-1", "offset": 10}}]})
    );
}

#[test]
fn an_unnamed_failed_item_fails_the_whole_batch() {
    let payload = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}).to_string();
    let batch = decode_batch(Trigger::Sqs, &payload).unwrap();
    assert_eq!(batch.shape.items, ["unnamed#0"]);
    assert!(batch.shape.response(&batch.shape.items).is_err());
    assert_eq!(batch.shape.response(&[]).unwrap(), json!({"batchItemFailures": []}));
    assert!(decode_batch(Trigger::Kinesis, "{\"Records\": 5}").is_err(), "not a batch at all");
}
