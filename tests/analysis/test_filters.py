"""The safe filter language: valid filters select the same rows as the same predicate in Polars, hostile
input is refused with a FilterError that names the problem, and fuzzing finds no other way out."""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.filters import (
    DEPRECATED_COLUMNS,
    FILTER_EXAMPLES,
    FILTER_HELP,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NESTING,
    FilterError,
    compile_filter,
)
from store.layout import FILTER_COLUMNS

ROWS = 400
STRINGS = {
    "model_id": ["m0", "m1", "m2", "m3"],
    "arch": ["resnet20", "vgg11"],
    "method": ["dense", "lrr", "magnitude", "random"],
    "corruption": ["clean", "fog", "frost", "gaussian_noise", "contrast"],
    "label_name": [str(label) for label in range(10)],
}
INTEGERS = ["severity", "sample_id", "label", "pred", "seed"]
BOOLEANS = ["correct", "finite", "reference_correct"]
DOUBLES = [name for name in FILTER_COLUMNS if name not in STRINGS and name not in INTEGERS + BOOLEANS]
NULLABLE = ["reference_correct", "reference_feature_norm", "reference_angle_true", "reference_margin"]
NUMERIC = INTEGERS + DOUBLES

# What DuckDB may raise when a filter that compiled is nonsense for the column types (the compiler leaves
# types to DuckDB, and the dashboard shows these errors); a parser or catalog error would be our bug.
DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.BinderException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
)

_FUNCTION_WORDS = "|".join(FUNCTIONS)
_COLUMN_WORDS = "|".join(FILTER_COLUMNS)
# Everything the compiler may write: our columns, functions, keywords, operators and placeholders.
OUR_VOCABULARY = re.compile(
    rf'(?:\s+|[(),?]|"(?:{_COLUMN_WORDS})"|(?:{_FUNCTION_WORDS})(?=\()|AND|OR|NOT|IN|BETWEEN|IS|NULL'
    r"|<>|<=|>=|[=<>+\-*/%])*"
)


def _frame() -> pl.DataFrame:
    """A few hundred plausible prediction rows, with NULLs in the dense-model columns."""
    rng = np.random.default_rng(7)
    label = rng.integers(0, 10, ROWS)
    pred = np.where(rng.random(ROWS) < 0.6, label, rng.integers(0, 10, ROWS))
    cos_true = rng.uniform(-1, 1, ROWS)
    columns: dict[str, pl.Series] = {
        name: pl.Series(name, rng.choice(values, ROWS), pl.String) for name, values in STRINGS.items()
    }
    columns["label_name"] = pl.Series("label_name", label.astype(str), pl.String)
    integers = {
        "severity": rng.integers(0, 6, ROWS),
        "sample_id": np.arange(ROWS),
        "label": label,
        "pred": pred,
        "seed": rng.integers(0, 3, ROWS),
    }
    columns |= {name: pl.Series(name, values, pl.Int32) for name, values in integers.items()}
    doubles = {
        "target_sparsity": rng.choice([0.0, 0.5, 0.8, 0.9], ROWS),
        "sparsity": rng.uniform(0, 0.95, ROWS),
        "loss": rng.exponential(1.0, ROWS),
        "confidence": rng.uniform(0.1, 1, ROWS),
        "p_true": rng.uniform(0, 1, ROWS),
        "feature_norm": rng.uniform(0.1, 3, ROWS),
        "weight_norm_true": rng.uniform(0.5, 2, ROWS),
        "cos_true": cos_true,
        "angle_true": np.degrees(np.arccos(cos_true)),
        "angle_pred": rng.uniform(0, 180, ROWS),
        "angle_nearest_wrong": rng.uniform(0, 180, ROWS),
        "margin": rng.normal(0, 1.5, ROWS),
        "reference_feature_norm": rng.uniform(0.1, 3, ROWS),
        "reference_angle_true": rng.uniform(0, 180, ROWS),
        "reference_margin": rng.normal(0, 1.5, ROWS),
    }
    columns |= {name: pl.Series(name, values, pl.Float64) for name, values in doubles.items()}
    columns["correct"] = pl.Series("correct", label == pred)
    columns["finite"] = pl.Series("finite", rng.random(ROWS) > 0.05)
    columns["reference_correct"] = pl.Series("reference_correct", rng.random(ROWS) < 0.7)
    frame = pl.DataFrame([columns[name] for name in FILTER_COLUMNS])
    missing = pl.Series(rng.random(ROWS) < 0.15)
    return frame.with_columns(
        pl.when(missing).then(None).otherwise(pl.col(name)).alias(name) for name in NULLABLE
    )


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def con(frame: pl.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory table t holding ``frame``, on a connection that cannot reach files."""
    connection = duckdb.connect(config={"enable_external_access": False, "threads": 1})
    connection.register("source", frame.to_arrow())
    connection.execute("CREATE TABLE t AS SELECT * FROM source")
    connection.unregister("source")
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, text: str) -> list[int]:
    """sample_id of the rows the compiled filter selects in DuckDB."""
    sql, params = compile_filter(text)
    query = "SELECT sample_id FROM t WHERE " + sql  # noqa: S608 -- sql is compile_filter's checked output
    return sorted(row[0] for row in con.execute(query, params).fetchall())


def _expected(frame: pl.DataFrame, predicate: pl.Expr) -> list[int]:
    """sample_id of the rows where the Polars predicate is true (NULL counts as false, as in SQL)."""
    return sorted(frame.filter(predicate)["sample_id"].to_list())


def _any_equal(column: str, values: list) -> pl.Expr:
    """SQL's ``column IN (values)``, spelled as ORed equalities so NULLs follow SQL's three-valued logic."""
    result = pl.col(column) == pl.lit(values[0])
    for value in values[1:]:
        result = result | (pl.col(column) == pl.lit(value))
    return result


c = pl.col
VALID: list[tuple[str, pl.Expr]] = [
    (
        "angle_true > 60 and not correct and method = 'lrr'",
        (c("angle_true") > 60) & ~c("correct") & (c("method") == "lrr"),
    ),
    (
        "margin between -1 and 0 and corruption in ('fog', 'frost')",
        (c("margin") >= -1) & (c("margin") <= 0) & _any_equal("corruption", ["fog", "frost"]),
    ),
    ("feature_norm < 0.5 * reference_feature_norm", c("feature_norm") < 0.5 * c("reference_feature_norm")),
    ("label_name = '3' and severity >= 3", (c("label_name") == "3") & (c("severity") >= 3)),
    ("abs(margin) < 0.1", c("margin").abs() < 0.1),
    ("correct = false", c("correct") == False),  # noqa: E712 -- a Polars expression, not a Python test
    ("method <> 'dense' and sparsity > 0.8", (c("method") != "dense") & (c("sparsity") > 0.8)),
    ("method != 'dense'", c("method") != "dense"),
    ("severity == 2", c("severity") == 2),
    ("ANGLE_TRUE > 90 AND NOT Correct", (c("angle_true") > 90) & ~c("correct")),
    ('"Angle_True" <= 30', c("angle_true") <= 30),
    ("not angle_true > 60", ~(c("angle_true") > 60)),
    (
        "correct or angle_true > 90 and margin < 0",
        c("correct") | ((c("angle_true") > 90) & (c("margin") < 0)),
    ),
    (
        "(correct or angle_true > 90) and margin < 0",
        (c("correct") | (c("angle_true") > 90)) & (c("margin") < 0),
    ),
    ("not correct and finite", ~c("correct") & c("finite")),
    ("angle_true - angle_pred - 10 > 0", c("angle_true") - c("angle_pred") - 10 > 0),
    ("2 + 3 * severity > 10", 2 + 3 * c("severity") > 10),
    ("-margin * 2 > 1", -c("margin") * 2 > 1),
    ("margin - -1 < 0", c("margin") + 1 < 0),
    ("feature_norm / reference_feature_norm > 1.2", c("feature_norm") / c("reference_feature_norm") > 1.2),
    ("sample_id % 7 = 3", c("sample_id") % 7 == 3),
    ("severity / 2 = 1.5", c("severity") / 2 == 1.5),
    ("margin not between -0.5 and 0.5", ~((c("margin") >= -0.5) & (c("margin") <= 0.5))),
    ("severity in (1, 3, 5)", _any_equal("severity", [1, 3, 5])),
    ("method not in ('dense', 'lrr')", ~_any_equal("method", ["dense", "lrr"])),
    ("label in (pred, 3)", (c("label") == c("pred")) | (c("label") == 3)),
    ("reference_margin is null", c("reference_margin").is_null()),
    (
        "reference_margin is not null and reference_margin < margin",
        c("reference_margin").is_not_null() & (c("reference_margin") < c("margin")),
    ),
    ("not reference_correct", ~c("reference_correct")),
    ("reference_correct or correct", c("reference_correct") | c("correct")),
    ("not (reference_correct and correct)", ~(c("reference_correct") & c("correct"))),
    ("reference_correct and not correct", c("reference_correct") & ~c("correct")),
    ("coalesce(reference_margin, 0) > margin", pl.coalesce(c("reference_margin"), pl.lit(0.0)) > c("margin")),
    ("least(angle_true, angle_pred) < 20", pl.min_horizontal("angle_true", "angle_pred") < 20),
    (
        "greatest(angle_true, angle_pred, 170) = 170",
        pl.max_horizontal("angle_true", "angle_pred", pl.lit(170.0)) == 170,
    ),
    ("sqrt(feature_norm) > 1.2", c("feature_norm").sqrt() > 1.2),
    ("ln(feature_norm) < 0", c("feature_norm").log() < 0),
    ("log10(feature_norm) > 0.3", c("feature_norm").log10() > 0.3),
    ("exp(margin) > 2", c("margin").exp() > 2),
    ("floor(margin) = -1", c("margin").floor() == -1),
    ("ceil(margin) = 1", c("margin").ceil() == 1),
    ("round(margin) = 2", c("margin").round(0) == 2),
    ("round(margin, 1) = 0.5", c("margin").round(1) == 0.5),
    ("cos(radians(angle_true)) < 0.2", c("angle_true").radians().cos() < 0.2),
    ("sin(radians(angle_pred)) > 0.9", c("angle_pred").radians().sin() > 0.9),
    ("degrees(radians(angle_true)) > 100", c("angle_true").radians().degrees() > 100),
    ("label_name = 'it''s'", c("label_name") == "it's"),
    ("label_name = '3' or label_name = 'a--b' or label_name = '/* x */'", c("label_name") == "3"),
    ("((((correct))))", c("correct")),
    ("correct = true and finite", (c("correct") == True) & c("finite")),  # noqa: E712 -- Polars, as above
    ("margin > 1e-1", c("margin") > 0.1),
    ("sample_id > 99999999999999999999999", pl.lit(False)),
    ("method = 'LRR'", pl.lit(False)),
    ("null", pl.lit(None, pl.Boolean)),
    ("true", pl.lit(True)),
    ("severity + 1 between 2 and 3", (c("severity") + 1 >= 2) & (c("severity") + 1 <= 3)),
]


@pytest.mark.parametrize(("text", "predicate"), VALID, ids=[text for text, _ in VALID])
def test_valid_filter_selects_the_rows_polars_selects(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, text: str, predicate: pl.Expr
) -> None:
    assert _rows(con, text) == _expected(frame, predicate)


def test_test_table_covers_every_filter_column(frame: pl.DataFrame) -> None:
    assert frame.columns == list(FILTER_COLUMNS)


def test_columns_are_quoted_canonical_names_and_values_are_bound() -> None:
    sql, params = compile_filter("ANGLE_TRUE > 60 and \"Method\" = 'lrr' and correct = true")
    assert sql == '((("angle_true" > ?) AND ("method" = ?)) AND ("correct" = ?))'
    assert params == [60, "lrr", True]


def test_text_values_never_reach_the_sql() -> None:
    sql, params = compile_filter("label_name = 'x''; DROP TABLE t; --' or method = '\" or 1=1'")
    assert params == ["x'; DROP TABLE t; --", '" or 1=1']
    assert OUR_VOCABULARY.fullmatch(sql)


def test_numbers_are_bound_with_their_type() -> None:
    assert compile_filter("severity in (3, 2.5, 1e3, 7.)")[1] == [3, 2.5, 1000.0, 7.0]
    assert [type(value) for value in compile_filter("severity > 3 and margin > 3.0")[1]] == [int, float]


def test_integers_beyond_64_bits_are_bound_as_floats() -> None:
    assert compile_filter("sample_id < 99999999999999999999999")[1] == [1e23]
    assert compile_filter("sample_id < 9223372036854775807")[1] == [9223372036854775807]


def test_log10_keeps_its_meaning() -> None:
    assert compile_filter("log10(feature_norm) > 1") == ('(log10("feature_norm") > ?)', [1])


def test_nesting_up_to_the_limit_compiles() -> None:
    deepest = "(" * MAX_NESTING + "correct" + ")" * MAX_NESTING
    assert compile_filter(deepest) == ('"correct"', [])
    assert compile_filter("abs(" * MAX_NESTING + "margin" + ")" * MAX_NESTING + " > 1")[1] == [1]


def test_help_lists_every_column_and_function_and_its_examples_compile() -> None:
    for name, meaning in FILTER_COLUMNS.items():
        assert name in FILTER_HELP and meaning in FILTER_HELP
    for spec in FUNCTIONS.values():
        assert spec.signature in FILTER_HELP
    for example in FILTER_EXAMPLES:
        assert example in FILTER_HELP
        compile_filter(example)


def test_the_old_dense_names_are_aliases_of_the_reference_columns_deprecated_once_in_the_help(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """For one release `dense_*` (the reference columns' old names) compile to `reference_*`: the same SQL,
    so the same rows; the help says once that they are deprecated, and lists no other column for them."""
    renamed = ("correct", "feature_norm", "angle_true", "margin")
    assert {f"dense_{name}": f"reference_{name}" for name in renamed} == DEPRECATED_COLUMNS
    for old, new in DEPRECATED_COLUMNS.items():
        assert new in FILTER_COLUMNS and old not in FILTER_COLUMNS
        assert compile_filter(f"{old.upper()} is null") == compile_filter(f"{new} is null")
        assert FILTER_HELP.count(old) == 1
    assert FILTER_HELP.count("Deprecated") == 1
    text = "dense_correct and not correct and dense_margin < margin and dense_feature_norm > 0.5 * feature_norm"
    assert _rows(con, text) == _rows(con, text.replace("dense_", "reference_"))
    assert _rows(con, text)  # the comparison selects rows: it could tell two answers apart


def test_type_errors_are_left_to_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    """The documented choice: no type checking in the compiler; DuckDB reports nonsense at run time."""
    for text in ("method > 3", "abs(method) > 1", "severity = 'high'"):
        with pytest.raises(DATA_ERRORS):
            _rows(con, text)


HOSTILE: list[tuple[str, str]] = [
    ("read_csv('/etc/passwd') is not null", "function 'read_csv' is not allowed; allowed functions: abs,"),
    ("read_parquet('/tmp/x.parquet') is not null", "function 'read_parquet' is not allowed"),
    ("read_text('/etc/passwd') is not null", "function 'read_text' is not allowed"),
    ("glob('*') is not null", "function 'glob' is not allowed"),
    ("1=1; COPY t TO '/tmp/x'", "';' at character 4"),
    ("ATTACH '/tmp/x.db'", "'ATTACH'"),
    ("INSTALL httpfs", "'INSTALL'"),
    ("LOAD httpfs", "'LOAD'"),
    ("PRAGMA version", "'PRAGMA'"),
    ("SET memory_limit='1GB'", "'SET'"),
    ("CALL pragma_version()", "'CALL'"),
    ("EXPORT DATABASE '/tmp/x'", "'DATABASE'"),
    ("correct -- comment", "comments are not allowed in a filter: '-- comment'"),
    ("correct /* c */", "comments are not allowed in a filter: '/* c */'"),
    ("/* c */ correct", "comments are not allowed"),
    ("sample_id in (select 1)", "'select'"),
    ("exists (select 1)", "function 'exists' is not allowed"),
    ("with x as (select 1) select * from x", "'with'"),
    ("select * from t", "'select'"),
    ("current_setting('threads') = '2'", "function 'current_setting' is not allowed"),
    ("getenv('HOME') = 'x'", "function 'getenv' is not allowed"),
    ("duckdb_settings() is null", "function 'duckdb_settings' is not allowed"),
    ("pragma_version() is null", "function 'pragma_version' is not allowed"),
    ("angel_true > 60", "unknown column 'angel_true' (did you mean 'angle_true'?)"),
    ("Margn < 0", "unknown column 'Margn' (did you mean 'margin'?)"),
    ("zzz = 1", "unknown column 'zzz'; columns: model_id"),
    ('method = "lrr"', "text values go in single quotes: 'lrr'"),
    ("t.margin > 1", "'.' at character 2"),
    ("'unbalanced", "unterminated text value"),
    ('"angle_true > 1', "unterminated quoted column name"),
    ("(angle_true > 1", "'(' at character 1 is never closed"),
    ("angle_true > 1)", "')' at character 15 has no matching '('"),
    ("", "the filter is empty"),
    ("   \n\t ", "the filter is empty"),
    ("x" * 100_000, f"the filter is 100,000 characters long; the limit is {MAX_LENGTH:,}"),
    ("(" * 100_000 + "correct" + ")" * 100_000, "the limit is 2,000"),
    ("(" * 900 + "correct" + ")" * 900, f"nested more than {MAX_NESTING} deep"),
    ("(" * (MAX_NESTING + 1) + "correct" + ")" * (MAX_NESTING + 1), f"nested more than {MAX_NESTING} deep"),
    ("not " * 450 + "correct", "nested too deeply"),
    ("- " * 900 + "1 > 0", "nested too deeply"),
    ("1" + "+1" * 900 + " > 0", f"more than {MAX_DEPTH} levels"),
    (" or ".join(["correct"] * 150), f"more than {MAX_DEPTH} levels"),
    ("?", "'?' at character 1 is not allowed"),
    ("severity = ?", "'?' at character 12"),
    ("$1", "parameters are not part of the filter language"),
    ("severity = $1", "parameters are not part of the filter language"),
    ('"angle_true" > 1; drop table t', "';' at character 17"),
    ("angles[1] > 3", "'[' at character 7"),
    ("lambda x: x", "':'"),
    ("x -> x + 1", "'->'"),
    ("margin::int > 1", "'::'"),
    ("cast(margin as int) > 1", "function 'cast' is not allowed"),
    ("count(*) > 1", "function 'count' is not allowed"),
    ("sum(margin) over () > 1", "function 'sum' is not allowed"),
    ("*", "'*' is not allowed"),
    ("@margin > 1", "'@'"),
    ("!correct", "'!'"),
    ("correct && finite", "'&&'"),
    ("label_name || 'x' = '3x'", "'||'"),
    ("margin ^ 2 > 1", "'^'"),
    ("label_name like '3%'", "'like'"),
    ("e'\\x41' = label_name", "\"e'\\\\x41'\""),
    ("$$x$$ = label_name", "'$$x$$'"),
    ("{'a': 1} is null", "'{'"),
    ("[1, 2] is null", "'['"),
    ("interval 1 day is null", "'interval'"),
    ("date '2020-01-01' is null", "'date'"),
    ("ceiling(margin) > 1", "function 'ceiling' is not allowed"),
    ("log(10, margin) > 1", "function 'log' is not allowed"),
    ("margin(1) > 1", "function 'margin' is not allowed"),
    ("\"read_csv\"('x') is null", "function 'read_csv' is not allowed"),
    ("abs(margin, 1) > 1", "abs takes 1 argument, got 2: use abs(x)"),
    ("abs() > 1", "abs takes 1 argument, got 0"),
    ("round(margin, 1, 2) > 1", "round takes 1 to 2 arguments, got 3"),
    ("least() > 1", "least takes at least 1 argument, got 0"),
    ("severity in ()", "write IN with a list of values"),
    ("severity in 3", "write IN with a list of values"),
    ("correct is true", "IS is only allowed as IS NULL or IS NOT NULL"),
    ("margin between symmetric 1 and 2", "is not allowed in a filter"),
    ("(margin, severity) is null", "is not allowed in a filter"),
    ("angle_true >", "the filter is incomplete near 'angle_true >'"),
    ("correct correct", "unexpected 'correct'"),
    ("and correct", "the filter is incomplete"),
    ("margin > 1e", "'1e' is not a number"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=[text[:40] for text, _ in HOSTILE])
def test_hostile_or_malformed_input_raises_filter_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert message in str(caught.value)


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


def _compile_and_run(con: duckdb.DuckDBPyConnection, text: str) -> None:
    """Compile ``text``; if it compiles, the SQL is ours alone and DuckDB runs it or reports bad data."""
    try:
        sql, params = compile_filter(text)
    except FilterError:
        return
    assert OUR_VOCABULARY.fullmatch(sql), sql
    assert sql.count("?") == len(params)
    query = "SELECT count(*) FROM t WHERE " + sql  # noqa: S608 -- sql is compile_filter's checked output
    try:
        con.execute(query, params).fetchall()
    except DATA_ERRORS as err:
        assert "not found" not in str(err), (text, sql, err)


FUZZ = settings(max_examples=400, deadline=None)


@FUZZ
@given(text=st.text(max_size=120))
def test_arbitrary_text_compiles_to_runnable_sql_or_raises_filter_error(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    _compile_and_run(con, text)


GRAMMAR_TOKENS = [
    *FILTER_COLUMNS,
    "Margin",
    '"margin"',
    *FUNCTIONS,
    "and",
    "or",
    "not",
    "in",
    "between",
    "is",
    "null",
    "true",
    "false",
    "=",
    "==",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    ",",
    "0",
    "1",
    "-1",
    "2.5",
    "1e3",
    "99999999999999999999999",
    "'fog'",
    "'3'",
    "'it''s'",
    "''",
]
HOSTILE_TOKENS = [
    "angel_true",
    '"x"',
    "read_csv",
    "getenv",
    "count",
    "like",
    "select",
    "from",
    "copy",
    "attach",
    "pragma",
    "exists",
    "cast",
    "as",
    "int",
    "symmetric",
    "distinct",
    ";",
    "'",
    '"',
    "--",
    "/*",
    "*/",
    "[",
    "]",
    "::",
    "?",
    "$1",
    ".",
    "@",
    "!",
    "||",
    "&&",
    "^",
    "->",
    ":",
    "{",
    "}",
    "$$",
    "1e",
]


@FUZZ
@given(
    parts=st.lists(st.sampled_from(GRAMMAR_TOKENS * 4 + HOSTILE_TOKENS), max_size=20),
    separator=st.sampled_from([" ", ""]),
)
def test_token_soup_compiles_to_runnable_sql_or_raises_filter_error(
    con: duckdb.DuckDBPyConnection, parts: list[str], separator: str
) -> None:
    _compile_and_run(con, separator.join(parts))


LEAVES = [*FILTER_COLUMNS, "null", "true", "false", "0", "-1", "2.5", "1e3", "'fog'", "'3'"]
BINARY = ["and", "or", "=", "==", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]


@st.composite
def _grammatical(draw: st.DrawFn, depth: int = 0) -> str:
    """Any filter the grammar allows, with no regard for types (``('fog') * (correct)`` included).
    Compound parts are parenthesised; precedence is checked by the hand-written cases."""
    if depth >= 4 or draw(st.booleans()):
        return draw(st.sampled_from(LEAVES))
    part = _grammatical(depth + 1)
    kind = draw(st.sampled_from(["binary", "not", "neg", "between", "in", "is", "function"]))
    if kind == "binary":
        return f"({draw(part)} {draw(st.sampled_from(BINARY))} {draw(part)})"
    if kind == "not":
        return f"(not {draw(part)})"
    if kind == "neg":
        return f"(- {draw(part)})"
    if kind == "between":
        keyword = draw(st.sampled_from(["between", "not between"]))
        return f"({draw(part)} {keyword} {draw(part)} and {draw(part)})"
    if kind == "in":
        items = draw(st.lists(part, min_size=1, max_size=3))
        return f"({draw(part)} {draw(st.sampled_from(['in', 'not in']))} ({', '.join(items)}))"
    if kind == "is":
        return f"({draw(part)} {draw(st.sampled_from(['is', 'is not']))} null)"
    name = draw(st.sampled_from(sorted(FUNCTIONS)))
    spec = FUNCTIONS[name]
    count = draw(st.integers(spec.min_args, spec.max_args or 3))
    return f"{name}({', '.join(draw(part) for _ in range(count))})"


@FUZZ
@given(text=_grammatical())
def test_every_grammatical_filter_compiles_and_runs_or_meets_a_type_error(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    compile_filter(text)
    _compile_and_run(con, text)


def _case(draw: st.DrawFn, word: str) -> str:
    """The word in a random case: keywords and column names are case-insensitive."""
    return draw(st.sampled_from([word, word.upper(), word.title()]))


@st.composite
def _number(draw: st.DrawFn) -> tuple[str, pl.Expr]:
    value = draw(st.one_of(st.integers(-20, 200), st.integers(-2000, 20000).map(lambda n: n / 100)))
    return repr(value), pl.lit(value)


@st.composite
def _numeric_column(draw: st.DrawFn) -> tuple[str, pl.Expr]:
    name = draw(st.sampled_from(NUMERIC))
    return draw(st.sampled_from([_case(draw, name), f'"{name}"'])), pl.col(name)


@st.composite
def _term(draw: st.DrawFn, depth: int = 0) -> tuple[str, pl.Expr]:
    """A numeric expression and its Polars twin. Products stay DOUBLE (one side is a float literal) so
    that DuckDB's integer overflow checks never disagree with Polars' wrap-around."""
    if depth >= 3 or draw(st.booleans()):
        return draw(st.one_of(_numeric_column(), _number()))
    left_text, left = draw(_term(depth + 1))
    right_text, right = draw(_term(depth + 1))
    kind = draw(st.sampled_from(["+", "-", "*", "abs", "neg", "least", "greatest", "coalesce"]))
    if kind == "+":
        return f"({left_text} + {right_text})", left + right
    if kind == "-":
        return f"({left_text} - {right_text})", left - right
    if kind == "*":
        factor = draw(st.integers(-300, 300)) / 100
        return f"({left_text} * {factor!r})", left * factor
    if kind == "abs":
        return f"{_case(draw, 'abs')}({left_text})", left.abs()
    if kind == "neg":
        return f"-({left_text})", -left
    if kind == "least":
        return f"least({left_text}, {right_text})", pl.min_horizontal(left, right)
    if kind == "greatest":
        return f"greatest({left_text}, {right_text})", pl.max_horizontal(left, right)
    return f"coalesce({left_text}, {right_text})", pl.coalesce(left, right)


OPERATORS = {
    "=": "__eq__",
    "==": "__eq__",
    "<>": "__ne__",
    "!=": "__ne__",
    "<": "__lt__",
    "<=": "__le__",
    ">": "__gt__",
    ">=": "__ge__",
}


@st.composite
def _atom(draw: st.DrawFn) -> tuple[str, pl.Expr]:
    """A simple predicate and its Polars twin."""
    kind = draw(st.sampled_from(["compare", "between", "in", "text", "boolean", "null"]))
    if kind == "compare":
        (left_text, left), (right_text, right) = draw(_term()), draw(_term())
        operator = draw(st.sampled_from(sorted(OPERATORS)))
        return f"{left_text} {operator} {right_text}", getattr(left, OPERATORS[operator])(right)
    if kind == "between":
        value_text, value = draw(_term())
        (low_text, low), (high_text, high) = draw(_number()), draw(_number())
        return f"{value_text} {_case(draw, 'between')} {low_text} and {high_text}", (value >= low) & (
            value <= high
        )
    if kind == "in":
        name = draw(st.sampled_from(INTEGERS))
        values = draw(st.lists(st.integers(-1, 12), min_size=1, max_size=4))
        listed = ", ".join(map(str, values))
        return f"{_case(draw, name)} {_case(draw, 'in')} ({listed})", _any_equal(name, values)
    if kind == "text":
        name = draw(st.sampled_from(sorted(STRINGS)))
        value = draw(st.sampled_from([*STRINGS[name], "absent", "it's"]))
        literal = "'" + value.replace("'", "''") + "'"
        if draw(st.booleans()):
            return f"{name} = {literal}", pl.col(name) == value
        return f"{name} <> {literal}", pl.col(name) != value
    if kind == "boolean":
        name = draw(st.sampled_from(BOOLEANS))
        value = draw(st.sampled_from([None, True, False]))
        if value is None:
            return _case(draw, name), pl.col(name)
        return f"{name} = {str(value).lower()}", pl.col(name) == value
    name = draw(st.sampled_from(NULLABLE))
    if draw(st.booleans()):
        return f"{name} is null", pl.col(name).is_null()
    return f"{name} {_case(draw, 'is not')} null", pl.col(name).is_not_null()


@st.composite
def _predicate(draw: st.DrawFn, depth: int = 0) -> tuple[str, pl.Expr]:
    """A random filter in the grammar, together with the same predicate as a Polars expression."""
    if depth >= 3 or draw(st.booleans()):
        return draw(_atom())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    left_text, left = draw(_predicate(depth + 1))
    if kind == "not":
        return f"{_case(draw, 'not')} ({left_text})", ~left
    right_text, right = draw(_predicate(depth + 1))
    text = f"({left_text}) {_case(draw, kind)} ({right_text})"
    return text, (left & right) if kind == "and" else (left | right)


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
@settings(max_examples=300, deadline=None)
@given(case=_predicate())
def test_random_filters_select_the_rows_polars_selects(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, case: tuple[str, pl.Expr]
) -> None:
    text, predicate = case
    assert _rows(con, text) == _expected(frame, predicate), text
