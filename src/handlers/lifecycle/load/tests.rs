use super::*;

const HEAD: &str = "orchestrator = \"x\"\n\n";

fn error(text: &str) -> CatalogueError {
    parse("x", "profiles/x.toml", &format!("{HEAD}{text}")).unwrap_err()
}

#[test]
fn every_built_in_profile_is_valid() {
    let names: Vec<String> = load(None, None).unwrap().into_iter().map(|p| p.name).collect();
    let files = BUILTIN.files().filter(|f| f.path().extension().is_some_and(|e| e == "toml")).count();
    assert_eq!(names.len(), files, "{names:?}");
    assert!(names.iter().any(|n| n == "mage"), "{names:?}");
}

#[test]
fn an_events_table_may_be_one_fact() {
    let p = parse(
        "x",
        "profiles/x.toml",
        &format!(
            "{HEAD}[tables.sla_miss]\nlevel = \"run\"\nkey = [\"dag_id\", \"task_id\", \"execution_date\"]\npipeline = \"dag_id\"\norder = \"events\"\nevents = {{ fact = \"sla_missed\", time = \"timestamp\" }}\n"
        ),
    )
    .unwrap();
    assert_eq!(p.tables[0].spec.events.as_ref().unwrap().fact.as_deref(), Some("sla_missed"));
}

#[test]
fn events_errors_name_the_table_line() {
    let table = "[tables.e]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"p\"\norder = \"events\"\n";
    let cases = [
        ("events = { time = \"t\" }", "either `column` and `values`"),
        ("events = { column = \"c\", values = { A = \"success\" }, fact = \"sla_missed\", time = \"t\" }", "either"),
        ("events = { column = \"c\", time = \"t\" }", "with `values`"),
        ("events = { fact = \"sla_missed\", values = { A = \"success\" }, time = \"t\" }", "needs `column`"),
        ("events = { fact = \"missed\", time = \"t\" }", "events fact 'missed' is not a result"),
        ("events = { column = \"c\", values = { A = \"done\" }, time = \"t\" }", "event A = 'done'"),
        ("events = { fact = \"sla_missed\", time = \"a.b\" }", "events time 'a.b' is not a column"),
    ];
    for (events, want) in cases {
        let e = error(&format!("{table}{events}\n"));
        assert_eq!((e.file.as_str(), e.line), ("profiles/x.toml", 3), "{events}: {e:?}");
        assert!(e.message.contains(want), "{events}: {}", e.message);
    }
}

#[test]
fn starts_by_start_time_needs_a_start_column() {
    let table = "[tables.r]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"p\"\nstatus = \"s\"\nterminal = { DONE = \"success\" }\n";
    let e = error(&format!("{table}starts = \"start_time\"\n"));
    assert_eq!(e.line, 3);
    assert!(e.message.contains("needs times.started"), "{}", e.message);
    let e = error(&format!("{table}starts = \"first\"\n"));
    assert_eq!(e.line, 9, "{e:?}");
    assert!(e.message.contains("unknown variant"), "{}", e.message);
    let ok = format!("{HEAD}{table}starts = \"start_time\"\ntimes = {{ started = \"t\" }}\n");
    assert!(parse("x", "profiles/x.toml", &ok).is_ok());
}

/// `backfill_kinds` names values of `run_kind` whose `expected` time is a logical date: it needs
/// both (docs/metrics.md, "Rows refused, and times left out").
#[test]
fn backfill_kinds_need_a_run_kind_and_an_expected_time() {
    let table = "[tables.r]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"p\"\nstatus = \"s\"\nterminal = { DONE = \"success\" }\nbackfill_kinds = [\"backfill\"]\n";
    let run_kind = "run_kind = { column = \"b\", null = \"schedule\", otherwise = \"backfill\" }\n";
    let expected = "times = { expected = \"e\" }\n";
    for extra in ["", run_kind, expected] {
        let e = error(&format!("{table}{extra}"));
        assert_eq!(e.line, 3, "{extra}: {e:?}");
        assert_eq!(e.message, "table 'r': backfill_kinds needs `run_kind` and times.expected", "{extra}");
    }
    assert!(parse("x", "profiles/x.toml", &format!("{HEAD}{table}{run_kind}{expected}")).is_ok());
}

#[test]
fn tables_of_two_profiles_need_distinct_requires() {
    let one = |requires: &str| {
        let text = format!(
            "{HEAD}[tables.dag_run]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"dag_id\"\nstatus = \"state\"\nterminal = {{ success = \"success\" }}\n{requires}"
        );
        parse("p", "profiles/p.toml", &text).unwrap()
    };
    assert!(check_ambiguity(&[one("requires = [\"run_after\"]\n"), one("requires = [\"execution_date\"]\n")]).is_ok());
    let e = check_ambiguity(&[one("requires = [\"run_after\"]\n"), one("")]).unwrap_err();
    assert!(e.message.contains("each needs a distinct `requires`"), "{}", e.message);
}

/// An unknown name in `PROFILES` is the variable's fault: named without a bogus `:0` location,
/// with the names known.
#[test]
fn an_unknown_profile_names_the_variable_without_a_line() {
    let e = load(None, Some(&["no_such_orchestrator".to_string()])).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("PROFILES: unknown profile 'no_such_orchestrator'"), "{text}");
    assert!(!text.contains(":0"), "{text}");
    assert!(text.contains("mage") && text.contains("airflow-3"), "the known names: {text}");
}
