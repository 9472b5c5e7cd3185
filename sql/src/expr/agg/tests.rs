//! Table-driven tests per function in a tiny changelog notation
//! (`"+ 1, + null, - 1"`), and property tests that incremental results,
//! merges and persisted states agree with recomputing from scratch.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use proptest::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::*;

// ---------------------------------------------------------------- helpers

fn func(name: &str) -> &'static AggregateFunction {
    lookup(name).unwrap()
}

fn int(v: i32) -> Value {
    Value::Int(v)
}

fn big(v: i64) -> Value {
    Value::BigInt(v)
}

fn dbl(v: f64) -> Value {
    Value::Double(v)
}

fn dec(s: &str) -> Value {
    Value::Decimal(Decimal::from_str(s).unwrap())
}

fn s(v: &str) -> Value {
    Value::str(v)
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(Arc::new(items))
}

fn hist(entries: &[(&str, i64)]) -> Value {
    Value::Map(Arc::new(
        entries.iter().map(|(k, c)| (s(k), big(*c))).collect(),
    ))
}

const DEC: DataType = DataType::Decimal {
    precision: 5,
    scale: 2,
};

fn parse_value(t: &DataType, text: &str) -> Value {
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    match t {
        DataType::Int => int(text.parse().unwrap()),
        DataType::BigInt => big(text.parse().unwrap()),
        DataType::Double => dbl(text.parse().unwrap()),
        DataType::Decimal { .. } => dec(text),
        DataType::String => s(text),
        other => panic!("no test notation for {other}"),
    }
}

/// Feeds a changelog like `"+ 1, + null, - 1"` to `acc`. With no column
/// types (`COUNT(*)`) the values are ignored: write `+ _`.
fn apply(acc: &mut Accumulator, types: &[DataType], script: &str) {
    for step in script.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (op, text) = step.split_at(1);
        let args: Vec<Value> = types
            .first()
            .map(|t| parse_value(t, text.trim()))
            .into_iter()
            .collect();
        match op {
            "+" => acc.add(&args),
            "-" => acc.retract(&args),
            _ => panic!("bad step {step:?}"),
        }
    }
}

fn types_of(types: &[DataType], params: &[Value]) -> Vec<DataType> {
    let mut all = types.to_vec();
    all.extend(
        params
            .iter()
            .map(|p| signature::param_type("test", p).unwrap()),
    );
    all
}

/// Runs `script` through `name(types..., params...)` and checks the result
/// is `expected` and of the type the binder was promised.
fn check(name: &str, types: &[DataType], params: &[Value], script: &str, expected: Value) {
    let f = func(name);
    let result_type = f.bind_call(&types_of(types, params), params).unwrap();
    let mut acc = Accumulator::try_new(f, types, params).unwrap();
    apply(&mut acc, types, script);
    let got = acc.result();
    assert_eq!(got, expected, "{name}{types:?}{params:?} over [{script}]");
    assert!(
        got.fits(&result_type),
        "{name}{types:?} over [{script}]: {got:?} is not a {result_type}"
    );
}

// ------------------------------------------------------------- registry

#[test]
fn lookup_is_case_insensitive_and_names_are_upper_case() {
    assert_eq!(lookup("count").map(|f| f.name), Some("COUNT"));
    assert_eq!(
        lookup("Latest_By_Offset").map(|f| f.name),
        Some("LATEST_BY_OFFSET")
    );
    assert!(lookup("median").is_none());
    let names: Vec<_> = names().collect();
    assert_eq!(names.len(), 13);
    for n in names {
        assert_eq!(n, n.to_ascii_uppercase());
        assert!(std::ptr::eq(lookup(n).unwrap(), func(n)));
    }
}

#[test]
fn only_order_dependent_functions_refuse_retraction() {
    let refusing: Vec<_> = FUNCTIONS
        .iter()
        .filter(|f| !f.retractable)
        .map(|f| f.name)
        .collect();
    assert_eq!(refusing, ["EARLIEST_BY_OFFSET", "LATEST_BY_OFFSET"]);
}

#[test]
fn arguments_split_into_columns_and_literal_parameters() {
    let none: [i32; 0] = [];
    assert_eq!(func("COUNT").split_args(&none), (&none[..], &none[..]));
    assert_eq!(func("TOPK").split_args(&[1, 2]), (&[1][..], &[2][..]));
    assert_eq!(
        func("LATEST_BY_OFFSET").split_args(&[1, 2, 3]),
        (&[1][..], &[2, 3][..])
    );
}

#[test]
fn return_types() {
    use DataType::*;
    let arr_of = |t: DataType| Array(Box::new(t));
    let cases: Vec<(&str, Vec<DataType>, DataType)> = vec![
        ("COUNT", vec![], BigInt),
        ("COUNT", vec![String], BigInt),
        ("SUM", vec![Int], Int),
        ("SUM", vec![BigInt], BigInt),
        ("SUM", vec![Double], Double),
        (
            "SUM",
            vec![DEC],
            Decimal {
                precision: 28,
                scale: 2,
            },
        ),
        ("AVG", vec![Int], Double),
        ("AVG", vec![DEC], Double),
        ("MIN", vec![String], String),
        ("MAX", vec![Timestamp], Timestamp),
        ("COUNT_DISTINCT", vec![String], BigInt),
        ("EARLIEST_BY_OFFSET", vec![String], String),
        ("EARLIEST_BY_OFFSET", vec![String, Boolean], String),
        ("LATEST_BY_OFFSET", vec![String, Int], arr_of(String)),
        (
            "LATEST_BY_OFFSET",
            vec![String, BigInt, Boolean],
            arr_of(String),
        ),
        ("TOPK", vec![Double, Int], arr_of(Double)),
        ("TOPKDISTINCT", vec![String, Int], arr_of(String)),
        ("COLLECT_LIST", vec![arr_of(Int)], arr_of(arr_of(Int))),
        ("COLLECT_SET", vec![Date], arr_of(Date)),
        (
            "HISTOGRAM",
            vec![String],
            Map(Box::new(String), Box::new(BigInt)),
        ),
    ];
    for (name, args, want) in cases {
        assert_eq!((func(name).return_type)(&args), Ok(want), "{name}{args:?}");
    }
}

#[test]
fn wrong_arguments_are_refused_with_a_message() {
    use DataType::*;
    let cases: Vec<(&str, Vec<DataType>, &str)> = vec![
        ("COUNT", vec![Int, Int], "COUNT takes one argument or *"),
        (
            "SUM",
            vec![String],
            "argument of SUM must be INT, BIGINT, DOUBLE or DECIMAL, not STRING",
        ),
        ("SUM", vec![], "SUM takes exactly one argument"),
        ("AVG", vec![Boolean], "argument of AVG must be"),
        ("MIN", vec![Boolean], "argument of MIN must be a number"),
        ("MAX", vec![Array(Box::new(Int))], "argument of MAX must be"),
        (
            "TOPK",
            vec![Int],
            "TOPK takes a column and an integer literal k",
        ),
        (
            "TOPK",
            vec![Int, String],
            "TOPK takes a column and an integer literal k",
        ),
        (
            "LATEST_BY_OFFSET",
            vec![Int, Boolean, Int],
            "LATEST_BY_OFFSET takes a column",
        ),
        (
            "HISTOGRAM",
            vec![Int],
            "argument of HISTOGRAM must be STRING, not INTEGER",
        ),
    ];
    for (name, args, want) in cases {
        let err = (func(name).return_type)(&args).unwrap_err();
        assert!(err.starts_with(want), "{name}{args:?}: {err}");
    }
}

#[test]
fn literal_parameters_are_checked_at_bind_time() {
    use DataType::*;
    let topk = func("TOPK");
    assert_eq!(
        topk.bind_call(&[Int, Int], &[int(5)]),
        Ok(Array(Box::new(Int)))
    );
    for bad in [int(0), big(-1), big(i64::MAX)] {
        let err = topk
            .bind_call(&[Int, BigInt], std::slice::from_ref(&bad))
            .unwrap_err();
        assert!(
            err.starts_with("k of TOPK must be an integer between 1"),
            "{bad}: {err}"
        );
    }
    let err = topk.bind_call(&[Int, Int], &[Value::Null]).unwrap_err();
    assert_eq!(err, "the literal parameters of TOPK must not be NULL");
    let latest = func("LATEST_BY_OFFSET");
    assert!(latest
        .bind_call(&[String, Int], &[int(0)])
        .unwrap_err()
        .starts_with("n of LATEST_BY_OFFSET must be"));
    assert_eq!(
        latest.bind_call(&[String, Int, Boolean], &[int(2), Value::Boolean(false)]),
        Ok(Array(Box::new(String)))
    );
    // A binder that forgets a parameter, or passes one as a column.
    assert!(Accumulator::try_new(topk, &[Int], &[]).is_err());
    assert!(Accumulator::try_new(topk, &[Int, Int], &[]).is_err());
    assert!(Accumulator::try_new(func("SUM"), &[], &[]).is_err());
    assert!(Accumulator::try_new(func("SUM"), &[Int], &[int(1)]).is_err());
}

// ------------------------------------------------------ function tables

#[test]
fn count() {
    let col = [DataType::String];
    check("COUNT", &[], &[], "", big(0));
    check("COUNT", &[], &[], "+ _, + _, + _", big(3));
    check("COUNT", &[], &[], "+ _, + _, - _", big(1));
    check("COUNT", &col, &[], "+ a, + null, + b", big(2));
    check("COUNT", &col, &[], "+ null", big(0));
    check("COUNT", &col, &[], "+ a, + null, - null", big(1));
    check("COUNT", &col, &[], "+ a, + a, - a", big(1));
}

#[test]
fn sum() {
    use DataType::*;
    check("SUM", &[Int], &[], "", int(0));
    check("SUM", &[Int], &[], "+ 1, + 2, + null", int(3));
    check("SUM", &[Int], &[], "+ 1, + 2, - 1", int(2));
    // INT and BIGINT wrap around like ksqlDB's, and come back on retraction.
    check("SUM", &[Int], &[], "+ 2147483647, + 1", int(i32::MIN));
    check("SUM", &[Int], &[], "+ 2147483647, + 1, - 1", int(i32::MAX));
    check(
        "SUM",
        &[BigInt],
        &[],
        "+ 9223372036854775807, + 1",
        big(i64::MIN),
    );
    check("SUM", &[BigInt], &[], "+ 5, + -7", big(-2));
    check("SUM", &[Double], &[], "", dbl(0.0));
    check("SUM", &[Double], &[], "+ 1.5, + 2.25, + null", dbl(3.75));
    check("SUM", &[Double], &[], "+ inf, + 1", dbl(f64::INFINITY));
    check("SUM", &[Double], &[], "+ inf, + -inf", dbl(f64::NAN));
    check("SUM", &[Double], &[], "+ inf, + 1, - inf", dbl(1.0));
    check("SUM", &[Double], &[], "+ NaN, + 2, - NaN", dbl(2.0));
    // Rounding residue does not outlive the values.
    check(
        "SUM",
        &[Double],
        &[],
        "+ 0.1, + 0.2, - 0.1, - 0.2",
        dbl(0.0),
    );
    check("SUM", &[DEC], &[], "", dec("0"));
    check("SUM", &[DEC], &[], "+ 1.25, + 2.5, + null", dec("3.75"));
    check("SUM", &[DEC], &[], "+ 1.25, + 2.5, - 1.25", dec("2.50"));
    check("SUM", &[DEC], &[], "+ 999.99, + 999.99", dec("1999.98"));
}

#[test]
fn avg() {
    use DataType::*;
    check("AVG", &[Int], &[], "", dbl(0.0));
    check("AVG", &[Int], &[], "+ null", dbl(0.0));
    check("AVG", &[Int], &[], "+ 1, + 2", dbl(1.5));
    check("AVG", &[Int], &[], "+ 1, + null, + 4", dbl(2.5));
    check("AVG", &[Int], &[], "+ 1, + 2, - 2", dbl(1.0));
    check(
        "AVG",
        &[BigInt],
        &[],
        "+ 9223372036854775807, + 9223372036854775807",
        dbl(9.223372036854776e18),
    );
    check("AVG", &[Double], &[], "+ 1.5, + 2.5", dbl(2.0));
    check("AVG", &[Double], &[], "+ inf, + 1, - inf", dbl(1.0));
    check("AVG", &[DEC], &[], "+ 1.25, + 1.75", dbl(1.5));
}

#[test]
fn min_and_max() {
    use DataType::*;
    check("MIN", &[Int], &[], "", Value::Null);
    check("MIN", &[Int], &[], "+ null", Value::Null);
    check("MIN", &[Int], &[], "+ 3, + 1, + null, + 2", int(1));
    check("MAX", &[Int], &[], "+ 3, + 1, + null, + 2", int(3));
    check("MIN", &[Int], &[], "+ 3, + 1, - 1", int(3));
    check("MIN", &[Int], &[], "+ 1, + 1, - 1", int(1));
    check("MAX", &[Int], &[], "+ 1, - 1", Value::Null);
    check("MAX", &[String], &[], "+ a, + c, + b, - c", s("b"));
    check("MAX", &[Double], &[], "+ 1, + NaN, + inf", dbl(f64::NAN));
    check("MIN", &[DEC], &[], "+ 1.50, + 1.25", dec("1.25"));
}

#[test]
fn count_distinct() {
    let col = [DataType::String];
    check("COUNT_DISTINCT", &col, &[], "", big(0));
    check("COUNT_DISTINCT", &col, &[], "+ a, + b, + a, + null", big(2));
    check("COUNT_DISTINCT", &col, &[], "+ a, + a, - a", big(1));
    check("COUNT_DISTINCT", &col, &[], "+ a, + b, - a", big(1));
}

#[test]
fn earliest_and_latest_by_offset() {
    let col = [DataType::Int];
    let no = Value::Boolean(false);
    check("EARLIEST_BY_OFFSET", &col, &[], "", Value::Null);
    check("EARLIEST_BY_OFFSET", &col, &[], "+ null, + 1, + 2", int(1));
    check(
        "EARLIEST_BY_OFFSET",
        &col,
        std::slice::from_ref(&no),
        "+ null, + 1",
        Value::Null,
    );
    check("EARLIEST_BY_OFFSET", &col, &[int(2)], "", arr(vec![]));
    check(
        "EARLIEST_BY_OFFSET",
        &col,
        &[int(2)],
        "+ 1, + null, + 2, + 3",
        arr(vec![int(1), int(2)]),
    );
    check(
        "EARLIEST_BY_OFFSET",
        &col,
        &[int(2), no.clone()],
        "+ 1, + null, + 2",
        arr(vec![int(1), Value::Null]),
    );
    check("LATEST_BY_OFFSET", &col, &[], "", Value::Null);
    check("LATEST_BY_OFFSET", &col, &[], "+ 1, + 2, + null", int(2));
    check(
        "LATEST_BY_OFFSET",
        &col,
        std::slice::from_ref(&no),
        "+ 1, + null",
        Value::Null,
    );
    check(
        "LATEST_BY_OFFSET",
        &col,
        &[big(2)],
        "+ 1, + 2, + null, + 3",
        arr(vec![int(2), int(3)]),
    );
    check(
        "LATEST_BY_OFFSET",
        &col,
        &[int(2), no],
        "+ 1, + 2, + null",
        arr(vec![int(2), Value::Null]),
    );
}

#[test]
fn topk_and_topkdistinct() {
    let col = [DataType::Int];
    let k3 = [int(3)];
    check("TOPK", &col, &k3, "", arr(vec![]));
    check("TOPK", &col, &k3, "+ 1", arr(vec![int(1)]));
    check(
        "TOPK",
        &col,
        &k3,
        "+ 5, + 1, + 5, + 3, + null, + 4",
        arr(vec![int(5), int(5), int(4)]),
    );
    check(
        "TOPK",
        &col,
        &k3,
        "+ 5, + 1, + 5, - 5",
        arr(vec![int(5), int(1)]),
    );
    check(
        "TOPKDISTINCT",
        &col,
        &k3,
        "+ 5, + 1, + 5, + 3, + 4",
        arr(vec![int(5), int(4), int(3)]),
    );
    check(
        "TOPKDISTINCT",
        &col,
        &k3,
        "+ 5, + 5, - 5",
        arr(vec![int(5)]),
    );
    check(
        "TOPKDISTINCT",
        &col,
        &k3,
        "+ 5, + 1, - 5",
        arr(vec![int(1)]),
    );
}

#[test]
fn collect_list_and_set() {
    let col = [DataType::String];
    check("COLLECT_LIST", &col, &[], "", arr(vec![]));
    check(
        "COLLECT_LIST",
        &col,
        &[],
        "+ a, + null, + b, + a",
        arr(vec![s("a"), Value::Null, s("b"), s("a")]),
    );
    // A retraction removes the most recent equal value, as in ksqlDB.
    check(
        "COLLECT_LIST",
        &col,
        &[],
        "+ a, + b, + a, - a",
        arr(vec![s("a"), s("b")]),
    );
    check("COLLECT_SET", &col, &[], "", arr(vec![]));
    check(
        "COLLECT_SET",
        &col,
        &[],
        "+ b, + a, + b, + null",
        arr(vec![s("b"), s("a"), Value::Null]),
    );
    check(
        "COLLECT_SET",
        &col,
        &[],
        "+ b, + a, + b, - b",
        arr(vec![s("b"), s("a")]),
    );
    check("COLLECT_SET", &col, &[], "+ b, + a, - b", arr(vec![s("a")]));
    check(
        "COLLECT_SET",
        &col,
        &[],
        "+ b, + a, - b, + b",
        arr(vec![s("a"), s("b")]),
    );
}

#[test]
fn histogram() {
    let col = [DataType::String];
    check("HISTOGRAM", &col, &[], "", hist(&[]));
    check(
        "HISTOGRAM",
        &col,
        &[],
        "+ b, + a, + b, + null",
        hist(&[("a", 1), ("b", 2)]),
    );
    check("HISTOGRAM", &col, &[], "+ a, - a", hist(&[]));
    check(
        "HISTOGRAM",
        &col,
        &[],
        "+ b, + a, + b, - b",
        hist(&[("a", 1), ("b", 1)]),
    );
    // Counts are BIGINTs, as the MAP<STRING, BIGINT> type says.
    let mut acc = Accumulator::try_new(func("HISTOGRAM"), &col, &[]).unwrap();
    acc.add(&[s("a")]);
    let Value::Map(m) = acc.result() else {
        panic!()
    };
    assert!(matches!(m[0].1, Value::BigInt(1)));
}

#[test]
fn insert_only_mode_keeps_only_what_the_result_needs() {
    use DataType::*;
    let mut max = Accumulator::try_new_insert_only(func("MAX"), &[Int], &[]).unwrap();
    let mut top = Accumulator::try_new_insert_only(func("TOPK"), &[Int], &[int(3)]).unwrap();
    let mut top_d =
        Accumulator::try_new_insert_only(func("TOPKDISTINCT"), &[Int], &[int(2)]).unwrap();
    for i in 0..1000 {
        for acc in [&mut max, &mut top, &mut top_d] {
            acc.add(&[int(i % 500)]);
            acc.add(&[Value::Null]);
        }
    }
    assert_eq!(max.result(), int(499));
    assert_eq!(top.result(), arr(vec![int(499), int(499), int(498)]));
    assert_eq!(top_d.result(), arr(vec![int(499), int(498)]));
    let Value::Array(state) = top.to_state() else {
        panic!()
    };
    assert_eq!(state.len(), 3, "rows, mode, values");
    let Value::Array(values) = &state[2] else {
        panic!()
    };
    assert!(
        values.len() <= 4,
        "at most 3 values with their counts: {values:?}"
    );
    assert!(!max.is_empty());
}

#[test]
fn is_empty_counts_rows_not_values() {
    let f = func("COUNT");
    let mut acc = Accumulator::try_new(f, &[DataType::Int], &[]).unwrap();
    assert!(acc.is_empty());
    acc.add(&[Value::Null]);
    assert!(!acc.is_empty(), "a row with a NULL argument is still a row");
    assert_eq!(acc.result(), big(0));
    acc.retract(&[Value::Null]);
    assert!(acc.is_empty());
    let mut sum = Accumulator::try_new(func("SUM"), &[DataType::Int], &[]).unwrap();
    sum.add(&[int(1)]);
    sum.retract(&[int(1)]);
    assert!(sum.is_empty());
}

#[test]
fn merge_treats_the_other_as_later_input() {
    let col = [DataType::Int];
    let mut a = Accumulator::try_new(func("LATEST_BY_OFFSET"), &col, &[int(3)]).unwrap();
    let mut b = a.clone();
    apply(&mut a, &col, "+ 1, + 2");
    apply(&mut b, &col, "+ 3, + 4");
    a.merge(&b);
    assert_eq!(a.result(), arr(vec![int(2), int(3), int(4)]));
    let mut a = Accumulator::try_new(func("COLLECT_SET"), &col, &[]).unwrap();
    let mut b = a.clone();
    apply(&mut a, &col, "+ 2, + 1");
    apply(&mut b, &col, "+ 3, + 1");
    a.merge(&b);
    assert_eq!(a.result(), arr(vec![int(2), int(1), int(3)]));
}

#[test]
fn corrupt_states_are_refused() {
    let f = func("SUM");
    let t = [DataType::Int];
    let bad = [
        int(1),
        arr(vec![]),
        arr(vec![big(1)]),
        arr(vec![big(-1), big(0), big(1), big(1)]),
        arr(vec![big(1), big(0), big(1), big(1), big(7)]),
        arr(vec![big(1), s("x"), big(1), big(1)]),
    ];
    for state in bad {
        let err = Accumulator::from_state(f, &t, &[], &state).unwrap_err();
        assert!(
            err.starts_with("stored state of SUM is corrupt"),
            "{state}: {err}"
        );
    }
    let h = func("HISTOGRAM");
    let t = [DataType::String];
    for pairs in [vec![s("a")], vec![s("a"), big(0)], vec![s("a"), s("b")]] {
        let state = arr(vec![big(1), arr(pairs)]);
        assert!(
            Accumulator::from_state(h, &t, &[], &state).is_err(),
            "{state}"
        );
    }
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "misuse")]
fn retracting_an_order_dependent_aggregate_is_caught_in_debug_builds() {
    let mut acc = Accumulator::try_new(func("LATEST_BY_OFFSET"), &[DataType::Int], &[]).unwrap();
    acc.add(&[int(1)]);
    acc.retract(&[int(1)]);
}

#[test]
fn common_accumulators_stay_small() {
    assert!(std::mem::size_of::<Accumulator>() <= 80);
}

// ------------------------------------------------------ property tests

/// One aggregate call as the binder would set it up.
#[derive(Debug, Clone)]
struct Call {
    name: &'static str,
    types: Vec<DataType>,
    params: Vec<Value>,
}

fn call(name: &'static str, types: &[DataType], params: &[Value]) -> Call {
    Call {
        name,
        types: types.to_vec(),
        params: params.to_vec(),
    }
}

impl Call {
    fn value_type(&self) -> DataType {
        self.types.first().cloned().unwrap_or(DataType::Int)
    }

    fn args(&self, v: &Value) -> Vec<Value> {
        if self.types.is_empty() {
            vec![]
        } else {
            vec![v.clone()]
        }
    }

    fn new_acc(&self, insert_only: bool) -> Accumulator {
        let f = func(self.name);
        if insert_only {
            Accumulator::try_new_insert_only(f, &self.types, &self.params).unwrap()
        } else {
            Accumulator::try_new(f, &self.types, &self.params).unwrap()
        }
    }
}

fn retractable_calls() -> Vec<Call> {
    use DataType::*;
    let k = |n| [int(n)];
    vec![
        call("COUNT", &[], &[]),
        call("COUNT", &[String], &[]),
        call("SUM", &[Int], &[]),
        call("SUM", &[BigInt], &[]),
        call("SUM", &[Double], &[]),
        call("SUM", &[DEC], &[]),
        call("AVG", &[Int], &[]),
        call("AVG", &[Double], &[]),
        call("AVG", &[DEC], &[]),
        call("MIN", &[Int], &[]),
        call("MAX", &[Int], &[]),
        call("MIN", &[String], &[]),
        call("MAX", &[Double], &[]),
        call("COUNT_DISTINCT", &[String], &[]),
        call("COUNT_DISTINCT", &[Double], &[]),
        call("TOPK", &[Int], &k(3)),
        call("TOPK", &[String], &k(2)),
        call("TOPKDISTINCT", &[Int], &k(3)),
        call("COLLECT_LIST", &[String], &[]),
        call("COLLECT_SET", &[String], &[]),
        call("COLLECT_SET", &[DEC], &[]),
        call("HISTOGRAM", &[String], &[]),
    ]
}

fn all_calls() -> Vec<Call> {
    let col = [DataType::String];
    let no = Value::Boolean(false);
    let mut calls = retractable_calls();
    for name in ["EARLIEST_BY_OFFSET", "LATEST_BY_OFFSET"] {
        calls.push(call(name, &col, &[]));
        calls.push(call(name, &col, std::slice::from_ref(&no)));
        calls.push(call(name, &col, &[int(2)]));
        calls.push(call(name, &col, &[int(2), no.clone()]));
    }
    calls
}

/// Recomputes `call` from scratch over the live rows, in arrival order, the
/// naive way.
fn reference(call: &Call, rows: &[Value]) -> Value {
    let vals: Vec<&Value> = rows.iter().filter(|v| !v.is_null()).collect();
    let n = vals.len();
    match call.name {
        "COUNT" if call.types.is_empty() => big(rows.len() as i64),
        "COUNT" => big(n as i64),
        "SUM" => match call.types[0] {
            DataType::Int => int(vals
                .iter()
                .fold(0i32, |a, v| a.wrapping_add(v.as_i64().unwrap() as i32))),
            DataType::BigInt => big(vals
                .iter()
                .fold(0i64, |a, v| a.wrapping_add(v.as_i64().unwrap()))),
            DataType::Double => dbl(vals.iter().map(|v| v.as_f64().unwrap()).sum()),
            _ => Value::Decimal(vals.iter().map(|v| decimal(v)).sum()),
        },
        "AVG" if n == 0 => dbl(0.0),
        "AVG" => {
            let total = match call.types[0] {
                DataType::Int => vals
                    .iter()
                    .map(|v| i128::from(v.as_i64().unwrap()))
                    .sum::<i128>() as f64,
                DataType::Double => vals.iter().map(|v| v.as_f64().unwrap()).sum(),
                _ => vals
                    .iter()
                    .map(|v| decimal(v))
                    .sum::<Decimal>()
                    .to_f64()
                    .unwrap(),
            };
            dbl(total / n as f64)
        }
        "MIN" => vals.iter().min().map_or(Value::Null, |v| (*v).clone()),
        "MAX" => vals.iter().max().map_or(Value::Null, |v| (*v).clone()),
        "COUNT_DISTINCT" => big(vals.iter().collect::<HashSet<_>>().len() as i64),
        "TOPK" | "TOPKDISTINCT" => {
            let k = call.params[0].as_i64().unwrap() as usize;
            let mut sorted: Vec<Value> = vals.into_iter().cloned().collect();
            sorted.sort_by(|a, b| b.cmp(a));
            if call.name == "TOPKDISTINCT" {
                sorted.dedup();
            }
            sorted.truncate(k);
            arr(sorted)
        }
        "COLLECT_LIST" => arr(rows.to_vec()),
        "COLLECT_SET" => {
            let mut out: Vec<Value> = Vec::new();
            for v in rows {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            arr(out)
        }
        "HISTOGRAM" => {
            let mut counts = BTreeMap::new();
            for v in vals {
                *counts.entry(v.clone()).or_insert(0i64) += 1;
            }
            Value::Map(Arc::new(
                counts.into_iter().map(|(k, c)| (k, big(c))).collect(),
            ))
        }
        "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET" => {
            let limit = call
                .params
                .first()
                .and_then(Value::as_i64)
                .map(|n| n as usize);
            let ignore_nulls = call.params.iter().find_map(Value::as_bool).unwrap_or(true);
            let seen: Vec<Value> = rows
                .iter()
                .filter(|v| !(ignore_nulls && v.is_null()))
                .cloned()
                .collect();
            let latest = call.name == "LATEST_BY_OFFSET";
            match limit {
                None if latest => seen.last().cloned().unwrap_or(Value::Null),
                None => seen.first().cloned().unwrap_or(Value::Null),
                Some(k) if latest => arr(seen[seen.len().saturating_sub(k)..].to_vec()),
                Some(k) => arr(seen.into_iter().take(k).collect()),
            }
        }
        other => panic!("no reference for {other}"),
    }
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::Decimal(d) => *d,
        other => panic!("not a decimal: {other}"),
    }
}

/// Results agree: exactly, except AVG, whose float division may round
/// differently from the naive one.
fn agree(call: &Call, got: &Value, want: &Value) -> bool {
    match (call.name, got, want) {
        ("AVG", Value::Double(a), Value::Double(b)) => {
            (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
        }
        _ => got == want,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(Value),
    /// Retract a live row, chosen by this index modulo the live count.
    Retract(usize),
}

fn value_strategy(t: &DataType) -> BoxedStrategy<Value> {
    let null = Just(Value::Null);
    match t {
        DataType::Int => prop_oneof![
            1 => null,
            6 => (-4i32..5).prop_map(Value::Int),
            1 => prop::sample::select(vec![i32::MIN, i32::MAX]).prop_map(Value::Int),
        ]
        .boxed(),
        DataType::BigInt => prop_oneof![
            1 => null,
            6 => (-4i64..5).prop_map(Value::BigInt),
            1 => prop::sample::select(vec![i64::MIN, i64::MAX]).prop_map(Value::BigInt),
        ]
        .boxed(),
        // Halves add exactly in any order; the specials test their counts.
        DataType::Double => prop_oneof![
            1 => null,
            8 => (-4i32..5).prop_map(|x| Value::Double(f64::from(x) / 2.0)),
            1 => prop::sample::select(vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN])
                .prop_map(Value::Double),
        ]
        .boxed(),
        // Scales 1 and 2 for a DECIMAL(5, 2): 1.5 and 1.50 are the same value.
        DataType::Decimal { .. } => prop_oneof![
            1 => null,
            6 => (-300i64..300, 1u32..=2).prop_map(|(m, s)| Value::Decimal(Decimal::new(m, s))),
        ]
        .boxed(),
        DataType::String => prop_oneof![
            1 => null,
            6 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(Value::str),
        ]
        .boxed(),
        other => panic!("no strategy for {other}"),
    }
}

fn ops_strategy(t: &DataType, retracts: bool) -> BoxedStrategy<Vec<Op>> {
    let add = value_strategy(t).prop_map(Op::Add);
    let op = if retracts {
        prop_oneof![3 => add, 2 => any::<usize>().prop_map(Op::Retract)].boxed()
    } else {
        add.boxed()
    };
    prop::collection::vec(op, 0..40).boxed()
}

/// A call from `calls` with `lists` independent op sequences for it.
fn scenario(
    calls: Vec<Call>,
    retracts: bool,
    lists: usize,
) -> impl Strategy<Value = (Call, Vec<Vec<Op>>)> {
    (0..calls.len()).prop_flat_map(move |i| {
        let c = calls[i].clone();
        let ops = prop::collection::vec(ops_strategy(&c.value_type(), retracts), lists);
        (Just(c), ops)
    })
}

/// Applies one op to the accumulator and the model list of live rows. A
/// retraction takes back the most recent live row equal to the chosen one.
fn step(call: &Call, acc: &mut Accumulator, live: &mut Vec<Value>, op: &Op) {
    match op {
        Op::Add(v) => {
            acc.add(&call.args(v));
            live.push(v.clone());
        }
        Op::Retract(i) => {
            if live.is_empty() {
                return;
            }
            let chosen = live[i % live.len()].clone();
            let pos = live.iter().rposition(|x| *x == chosen).unwrap();
            let row = live.remove(pos);
            acc.retract(&call.args(&row));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn retractions_match_recomputation((call, ops) in scenario(retractable_calls(), true, 1)) {
        let mut acc = call.new_acc(false);
        let mut live = Vec::new();
        for op in &ops[0] {
            step(&call, &mut acc, &mut live, op);
            let want = reference(&call, &live);
            prop_assert!(agree(&call, &acc.result(), &want),
                "{} after {:?}: got {:?}, want {:?}", call.name, live, acc.result(), want);
            prop_assert_eq!(acc.is_empty(), live.is_empty());
        }
    }

    #[test]
    fn insert_only_results_match_recomputation(
        (call, ops) in scenario(all_calls(), false, 1),
        insert_only in any::<bool>(),
    ) {
        let mut acc = call.new_acc(insert_only);
        let mut live = Vec::new();
        for op in &ops[0] {
            step(&call, &mut acc, &mut live, op);
            let want = reference(&call, &live);
            prop_assert!(agree(&call, &acc.result(), &want),
                "{} after {:?}: got {:?}, want {:?}", call.name, live, acc.result(), want);
        }
    }

    #[test]
    fn merge_equals_adding_the_other_inputs_afterwards(
        (call, ops) in scenario(all_calls(), true, 2),
        insert_only in any::<bool>(),
    ) {
        // Retract only where the function and the mode allow it.
        let retracts = func(call.name).retractable && !insert_only;
        let keep = |ops: &[Op]| -> Vec<Op> {
            ops.iter().filter(|op| retracts || matches!(op, Op::Add(_))).cloned().collect()
        };
        let (mut a, mut live_a) = (call.new_acc(insert_only), Vec::new());
        let (mut b, mut live_b) = (call.new_acc(insert_only), Vec::new());
        for op in keep(&ops[0]) {
            step(&call, &mut a, &mut live_a, &op);
        }
        for op in keep(&ops[1]) {
            step(&call, &mut b, &mut live_b, &op);
        }
        a.merge(&b);
        live_a.extend(live_b);
        let want = reference(&call, &live_a);
        prop_assert!(agree(&call, &a.result(), &want),
            "{}: merged {:?}, want {:?} over {:?}", call.name, a.result(), want, live_a);
        prop_assert_eq!(a.is_empty(), live_a.is_empty());
    }

    #[test]
    fn state_round_trip_preserves_result_and_future_behaviour(
        (call, ops) in scenario(all_calls(), true, 2),
        insert_only in any::<bool>(),
    ) {
        let retracts = func(call.name).retractable && !insert_only;
        let keep = |ops: &[Op]| -> Vec<Op> {
            ops.iter().filter(|op| retracts || matches!(op, Op::Add(_))).cloned().collect()
        };
        let mut acc = call.new_acc(insert_only);
        let mut live = Vec::new();
        for op in keep(&ops[0]) {
            step(&call, &mut acc, &mut live, &op);
        }
        let f = func(call.name);
        let mut restored = Accumulator::from_state(f, &call.types, &call.params, &acc.to_state())
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(restored.result(), acc.result());
        prop_assert_eq!(restored.is_empty(), acc.is_empty());
        let mut live2 = live.clone();
        for op in keep(&ops[1]) {
            step(&call, &mut acc, &mut live, &op);
            step(&call, &mut restored, &mut live2, &op);
            prop_assert_eq!(restored.result(), acc.result());
            prop_assert_eq!(restored.is_empty(), acc.is_empty());
        }
        // And the state of a restored accumulator restores the same again.
        let again = Accumulator::from_state(f, &call.types, &call.params, &restored.to_state())
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(again.result(), acc.result());
    }

    #[test]
    fn any_stored_value_is_refused_or_restored_without_panicking(
        i in 0..all_calls().len(),
        state in arbitrary_value(),
    ) {
        let call = &all_calls()[i];
        let f = func(call.name);
        if let Ok(acc) = Accumulator::from_state(f, &call.types, &call.params, &state) {
            let _ = acc.result();
            let _ = acc.to_state();
        }
    }
}

fn arbitrary_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i32>().prop_map(Value::Int),
        prop_oneof![any::<i64>(), -3i64..5].prop_map(Value::BigInt),
        any::<f64>().prop_map(Value::Double),
        "[a-c]{0,2}".prop_map(|s| Value::str(&s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(|v| Value::Array(Arc::new(v)))
    })
}
