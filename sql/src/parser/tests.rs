use super::*;

fn one(sql: &str) -> Statement {
    match parse_statement(sql) {
        Ok(s) => s.statement,
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[test]
fn create_stream_with_keys_and_properties() {
    let s = one("create stream pageviews (user_id VARCHAR KEY, page varchar, ts BIGINT, tags ARRAY<ARRAY<STRING>>, m MAP<STRING, INT>, s STRUCT<a INT, `b` DECIMAL(4, 2)>) \
                 WITH (kafka_topic='pv', value_format='JSON', partitions=2)");
    let Statement::CreateSource(c) = s else {
        panic!("{s:?}")
    };
    assert_eq!(c.name, "PAGEVIEWS");
    assert_eq!(c.kind, RelationKind::Stream);
    assert_eq!(c.columns.len(), 6);
    assert_eq!(c.columns[0].key, KeyKind::Key);
    assert_eq!(c.columns[1].name, "PAGE");
    assert_eq!(
        c.columns[3].data_type,
        TypeName::Array(Box::new(TypeName::Array(Box::new(TypeName::Simple {
            name: "STRING".into(),
            args: vec![]
        }))))
    );
    assert_eq!(
        c.properties[0],
        ("KAFKA_TOPIC".into(), PropertyValue::String("pv".into()))
    );
    assert_eq!(
        c.properties[2],
        ("PARTITIONS".into(), PropertyValue::Number("2".into()))
    );
}

#[test]
fn create_stream_without_columns_takes_them_from_a_schema_registry() {
    let s = one("CREATE STREAM bids WITH (kafka_topic='bids', value_format='AVRO');");
    let Statement::CreateSource(c) = s else {
        panic!("{s:?}")
    };
    assert!(c.columns.is_empty());
    assert_eq!(c.properties.len(), 2);
    // Without WITH there is nothing to infer from.
    assert!(parse_statement("CREATE STREAM bids;").is_err());
}

#[test]
fn create_table_as_select_with_window_and_emit() {
    let s = one("CREATE TABLE v AS SELECT page, COUNT(*) AS n FROM pv \
                 WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) GROUP BY page EMIT CHANGES;");
    let Statement::CreateAs(c) = s else { panic!() };
    assert_eq!(c.select.emit, Some(Emit::Changes));
    let w = c.select.window.expect("window");
    assert_eq!(w.kind, WindowKind::Tumbling { size: 60_000 });
    assert_eq!(w.grace, Some(10_000));
    assert!(c.select.query.to_string().contains("GROUP BY page"));
}

#[test]
fn hopping_and_session_windows() {
    let Statement::Select(s) = one("SELECT k, COUNT(*) FROM s WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS, RETENTION 1 DAY) GROUP BY k EMIT FINAL") else { panic!() };
    let w = s.window.expect("window");
    assert_eq!(
        w.kind,
        WindowKind::Hopping {
            size: 10_000,
            advance: 2_000
        }
    );
    assert_eq!(w.retention, Some(86_400_000));
    assert_eq!(s.emit, Some(Emit::Final));
    let Statement::Select(s) = one("SELECT k FROM s WINDOW SESSION (30 SECONDS) GROUP BY k") else {
        panic!()
    };
    assert_eq!(
        s.window.map(|w| w.kind),
        Some(WindowKind::Session { gap: 30_000 })
    );
}

#[test]
fn push_query_with_limit() {
    let Statement::Select(s) = one("SELECT * FROM pv WHERE page = '/x' EMIT CHANGES LIMIT 10")
    else {
        panic!()
    };
    assert_eq!(s.emit, Some(Emit::Changes));
    assert!(s.query.to_string().ends_with("LIMIT 10"));
}

#[test]
fn insert_values_with_rowtime() {
    let Statement::InsertValues(i) =
        one("INSERT INTO pv (ROWTIME, user_id, page) VALUES (1, 'u', '/a'), (2, 'v', '/b')")
    else {
        panic!()
    };
    assert_eq!(i.columns, vec!["ROWTIME", "USER_ID", "PAGE"]);
    assert_eq!(i.rows.len(), 2);
    assert_eq!(i.rows[1].len(), 3);
}

#[test]
fn other_statements() {
    assert_eq!(
        one("DROP TABLE IF EXISTS t DELETE TOPIC"),
        Statement::Drop {
            kind: RelationKind::Table,
            name: "T".into(),
            if_exists: true,
            delete_topic: true
        }
    );
    assert_eq!(
        one("terminate ctas_t_1"),
        Statement::Terminate(Some("CTAS_T_1".into()))
    );
    assert_eq!(
        one("SHOW ALL TOPICS"),
        Statement::Show {
            kind: ShowKind::AllTopics,
            extended: false
        }
    );
    assert_eq!(
        one("RESTART QUERY csas_s_2"),
        Statement::Restart("CSAS_S_2".into())
    );
    assert_eq!(
        one("SHOW QUERIES"),
        Statement::Show {
            kind: ShowKind::Queries,
            extended: false
        }
    );
    assert_eq!(
        one("list streams extended"),
        Statement::Show {
            kind: ShowKind::Streams,
            extended: true
        }
    );
    assert_eq!(
        one("DESCRIBE pv EXTENDED"),
        Statement::Describe {
            name: "PV".into(),
            extended: true
        }
    );
    assert_eq!(
        one("SET 'auto.offset.reset' = 'earliest'"),
        Statement::SetProperty {
            name: "auto.offset.reset".into(),
            value: "earliest".into()
        }
    );
    assert_eq!(
        one("SET extra_float_digits = 3"),
        Statement::SetProperty {
            name: "extra_float_digits".into(),
            value: "3".into()
        }
    );
    assert_eq!(
        one("UNSET 'auto.offset.reset'"),
        Statement::UnsetProperty("auto.offset.reset".into())
    );
    assert!(matches!(
        one("EXPLAIN SELECT * FROM t"),
        Statement::Explain(_)
    ));
    assert_eq!(
        one("EXPLAIN CTAS_T_1"),
        Statement::ExplainQuery("CTAS_T_1".into())
    );
    assert_eq!(one("BEGIN"), Statement::Transaction(TransactionKind::Begin));
}

#[test]
fn scripts_split_on_semicolons_and_keep_text() {
    let all = parse_statements("SELECT 1;\n  SELECT 'a;b' ;;").expect("parses");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].sql, "SELECT 'a;b'");
}

#[test]
fn errors_carry_positions() {
    let e = parse_statement("SELECT * FROM t WHERE\n  AND x").expect_err("fails");
    match e {
        ParseError::Syntax { position, .. } => assert_eq!(position.line, 2),
        other => panic!("{other:?}"),
    }
    let e = parse_statement("CREATE STREAM s (a INT) WITH (kafka_topic 'x')").expect_err("fails");
    assert!(e.to_string().contains("expected \"=\""), "{e}");
    let e = parse_statement("FROB s").expect_err("fails");
    assert_eq!(e.sqlstate(), "42601");
}

#[test]
fn cast_to_ksql_types() {
    let Statement::Select(s) =
        one("SELECT CAST(x AS MAP<STRING, ARRAY<INT>>), CAST(y AS DECIMAL(4,2)) FROM t")
    else {
        panic!()
    };
    let text = s.query.to_string();
    assert!(text.contains("MAP < STRING , ARRAY < INT >"), "{text}");
    assert_eq!(
        types::parse_type_text("MAP < STRING , ARRAY < INT >>").expect("type"),
        TypeName::Map(
            Box::new(TypeName::Simple {
                name: "STRING".into(),
                args: vec![]
            }),
            Box::new(TypeName::Array(Box::new(TypeName::Simple {
                name: "INT".into(),
                args: vec![]
            })))
        )
    );
}

#[test]
fn print_parse_print_round_trips_queries() {
    for sql in [
        "SELECT a, b + 1 AS c FROM s WHERE a > 1 AND b IS NOT NULL",
        "SELECT CASE WHEN a = 1 THEN 'x' ELSE 'y' END FROM s",
        "SELECT k, COUNT(*) FROM s GROUP BY k HAVING COUNT(*) > 2",
    ] {
        let Statement::Select(s) = one(sql) else {
            panic!()
        };
        let printed = s.query.to_string();
        let Statement::Select(again) = one(&printed) else {
            panic!()
        };
        assert_eq!(again.query.to_string(), printed);
    }
}
