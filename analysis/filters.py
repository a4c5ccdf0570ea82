"""The safe filter language: turn a filter a user typed into a checked SQL fragment with bound values.

The Samples page lets a person type a condition such as ``angle_true > 60 and not correct`` and runs it
against the predictions. That text is untrusted, so it never reaches DuckDB as written. Instead
:func:`compile_filter` reads it in four steps, each of which only lets through what it knows:

1. The raw text: not empty, at most :data:`MAX_LENGTH` characters, no comments (``--``, ``/* */``) and no
   unterminated quotes. Comments are rejected in the text itself, outside quoted parts, because they are
   the classic way to hide the rest of a statement.
2. The tokens, from sqlglot's DuckDB tokenizer (an iterative lexer, safe on any input): every token must
   be in a small lexicon (names, numbers, single-quoted text, the operators and keywords of the grammar,
   parentheses, commas); parentheses must balance and nest at most :data:`MAX_NESTING` deep; a name
   followed by ``(`` must be an allowed function called with the right number of arguments. This step
   gives precise messages and keeps out DuckDB extras that sqlglot's parser would otherwise rewrite into
   harmless-looking nodes (``@x`` becomes ``abs(x)``, ``x::int`` a cast, ``$1`` a placeholder).
3. The syntax tree, from sqlglot's parser (``parse_into(exp.Condition)``: one expression, nothing after
   it). sqlglot parses recursively, roughly twenty Python frames per level of parentheses, which is why
   :data:`MAX_NESTING` is 20 rather than something larger; chains of prefix operators (``not not ...``)
   that still exhaust the stack are reported as too deeply nested, as are trees deeper than
   :data:`MAX_DEPTH` (long ``or`` chains parse iteratively but would recurse in step 4).
4. Generation, by our own code, from an allow-list of node types (never a deny-list): and, or, not,
   the six comparisons, + - * / % and unary minus, parentheses, BETWEEN, IN with a list, IS [NOT] NULL,
   number/text/true/false/null literals, the columns of ``store.layout.FILTER_COLUMNS`` (and their
   deprecated names in :data:`DEPRECATED_COLUMNS`) and the functions in :data:`FUNCTIONS`. Any other node (IS TRUE, LIKE, casts, subqueries, tuples, ...), or an
   allowed node with a sqlglot argument we did not plan for (BETWEEN SYMMETRIC, table.column), is
   refused. We write the SQL ourselves instead of calling sqlglot's generator, so that the output holds
   only text from this module: double-quoted canonical column names, our operators and function names,
   ``NULL``, and a ``?`` for every number, text and true/false value the user wrote. Every compound
   expression is parenthesised, so operator precedence in the output is explicit.

Every failure of user input, including anything sqlglot raises and a RecursionError, becomes a
:class:`FilterError` whose message quotes the offending part.

Types are left to DuckDB: the compiler does not know column types, so ``method > 3`` compiles, and DuckDB
raises a ConversionException or BinderException when the query runs (likewise InvalidInputException for
``x % 0`` and OutOfRangeException for integer overflow). The dashboard shows duckdb errors to the user.
Integer literals that do not fit in 64 bits are bound as DOUBLE, because DuckDB cannot bind larger ones.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError
from sqlglot.tokens import Token, TokenType

from store.layout import FILTER_COLUMNS

MAX_LENGTH = 2000
MAX_NESTING = 20
MAX_DEPTH = 100

# The reference columns' names before they said "reference" (the reference is a model's base or the chosen
# one, often not dense): accepted for one release as aliases of the new names, which they compile to, so a
# saved filter gives the same answers. FILTER_HELP says once that they are deprecated.
DEPRECATED_COLUMNS: dict[str, str] = {
    "dense_correct": "reference_correct",
    "dense_feature_norm": "reference_feature_norm",
    "dense_angle_true": "reference_angle_true",
    "dense_margin": "reference_margin",
}

_DUCKDB = Dialect.get_or_raise("duckdb")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class FilterError(ValueError):
    """A filter expression outside the allowed grammar; the message says what and where, for a person."""


@dataclass(frozen=True)
class _Function:
    """An allowed function: its sqlglot node, how it reads in the help, and how many arguments it takes.

    ``arg_keys`` are the node's arguments that hold the user's arguments, in order; ``flags`` are
    arguments sqlglot sets itself that do not change DuckDB's meaning; ``constants`` are arguments sqlglot
    fills in from the function's name (``log10(x)`` parses as ``Log(this=10, expression=x)``).
    """

    node: type[exp.Func]
    signature: str
    min_args: int
    max_args: int | None = 1
    arg_keys: tuple[str, ...] = ("this",)
    flags: frozenset[str] = frozenset()
    constants: tuple[tuple[str, str], ...] = ()


_VARIADIC = ("this", "expressions")
_SKIPS_NULLS = frozenset({"ignore_nulls"})  # sqlglot marks least/greatest so; DuckDB's skip NULLs as well

FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(exp.Abs, "abs(x)", 1),
    "sqrt": _Function(exp.Sqrt, "sqrt(x)", 1),
    "ln": _Function(exp.Ln, "ln(x)", 1),
    "log10": _Function(exp.Log, "log10(x)", 1, arg_keys=("expression",), constants=(("this", "10"),)),
    "exp": _Function(exp.Exp, "exp(x)", 1),
    "least": _Function(exp.Least, "least(x, y, ...)", 1, None, _VARIADIC, _SKIPS_NULLS),
    "greatest": _Function(exp.Greatest, "greatest(x, y, ...)", 1, None, _VARIADIC, _SKIPS_NULLS),
    "round": _Function(exp.Round, "round(x[, digits])", 1, 2, ("this", "decimals")),
    "floor": _Function(exp.Floor, "floor(x)", 1),
    "ceil": _Function(exp.Ceil, "ceil(x)", 1),
    "cos": _Function(exp.Cos, "cos(x)", 1),
    "sin": _Function(exp.Sin, "sin(x)", 1),
    "degrees": _Function(exp.Degrees, "degrees(x)", 1),
    "radians": _Function(exp.Radians, "radians(x)", 1),
    "coalesce": _Function(exp.Coalesce, "coalesce(x, y, ...)", 1, None, _VARIADIC),
}
_FUNCTION_NAMES = {spec.node: name for name, spec in FUNCTIONS.items()}

FILTER_EXAMPLES: tuple[str, ...] = (
    "angle_true > 60 and not correct and method = 'lrr'",
    "margin between -1 and 0 and corruption in ('fog', 'frost')",
    "feature_norm < 0.5 * reference_feature_norm",
    "label_name = '3' and severity >= 3",
    "abs(margin) < 0.1",
    "reference_correct and not correct",
    "method <> 'dense' and sparsity > 0.8",
)

# The reference columns at work, shown under the help's list of them.
REFERENCE_EXAMPLE = "reference_correct and not correct and target_sparsity = 0.9 and corruption = 'fog' and severity = 5"

# The lexicon: token type -> accepted spellings (lower case). Names, numbers and text are checked later.
_SPELLINGS: dict[TokenType, frozenset[str]] = {
    TokenType.L_PAREN: frozenset({"("}),
    TokenType.R_PAREN: frozenset({")"}),
    TokenType.COMMA: frozenset({","}),
    TokenType.EQ: frozenset({"=", "=="}),
    TokenType.NEQ: frozenset({"<>", "!="}),
    TokenType.LT: frozenset({"<"}),
    TokenType.LTE: frozenset({"<="}),
    TokenType.GT: frozenset({">"}),
    TokenType.GTE: frozenset({">="}),
    TokenType.PLUS: frozenset({"+"}),
    TokenType.DASH: frozenset({"-"}),
    TokenType.STAR: frozenset({"*"}),
    TokenType.SLASH: frozenset({"/"}),
    TokenType.MOD: frozenset({"%"}),
    TokenType.AND: frozenset({"and"}),
    TokenType.OR: frozenset({"or"}),
    TokenType.NOT: frozenset({"not"}),
    TokenType.IN: frozenset({"in"}),
    TokenType.BETWEEN: frozenset({"between"}),
    TokenType.IS: frozenset({"is"}),
    TokenType.NULL: frozenset({"null"}),
    TokenType.TRUE: frozenset({"true"}),
    TokenType.FALSE: frozenset({"false"}),
}
_NAME_TOKENS = frozenset({TokenType.VAR, TokenType.IDENTIFIER})
_VALUE_TOKENS = frozenset({TokenType.STRING, TokenType.NUMBER})
_TOKEN_HINTS: dict[TokenType, str] = {
    TokenType.SEMICOLON: "a filter is a single condition",
    TokenType.PLACEHOLDER: "parameters are not part of the filter language; write values, e.g. severity >= 3",
    TokenType.PARAMETER: "parameters are not part of the filter language; write values, e.g. severity >= 3",
    TokenType.L_BRACKET: "list columns cannot be indexed in a filter",
    TokenType.DCOLON: "casts are not part of the filter language",
}

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_ARITHMETIC: dict[type[exp.Expr], str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
}
_BINARY: dict[type[exp.Expr], str] = {**_COMPARISONS, **_ARITHMETIC, exp.And: "AND", exp.Or: "OR"}


def compile_filter(text: str) -> tuple[str, list]:
    """Check a user's filter expression and return ``(sql, params)`` for ``WHERE <sql>`` in DuckDB.

    ``sql`` uses ``?`` placeholders, and ``params`` holds their values in order. Anything outside the
    grammar in :data:`FILTER_HELP` raises :class:`FilterError` naming the offending part.
    """
    _check_text(text)
    try:
        tokens = _DUCKDB.tokenize(text)
    except Exception as err:  # sqlglot's lexer may fail in its own ways; all of them are bad input
        raise FilterError(f"could not read the filter: {_first_line(err)}") from err
    _check_tokens(tokens, text)
    tree = _parse(tokens, text)
    _check_depth(tree)
    params: list = []
    return _sql(tree, params), params


def _check_text(text: str) -> None:
    """Refuse empty or overlong text, comments outside quotes, and quotes that are never closed."""
    if not text.strip():
        raise FilterError("the filter is empty; write a condition such as: " + FILTER_EXAMPLES[0])
    if len(text) > MAX_LENGTH:
        raise FilterError(f"the filter is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    position = 0
    while position < len(text):
        char = text[position]
        if char in "'\"":
            position = _closing_quote(text, position) + 1
        elif text.startswith(("--", "/*"), position):
            raise FilterError(
                f"comments are not allowed in a filter: {_excerpt(text, position)} (character {position + 1})"
            )
        else:
            position += 1


def _closing_quote(text: str, start: int) -> int:
    """Index of the quote that closes the one at ``start`` (a doubled quote stands for itself)."""
    quote = text[start]
    position = start + 1
    while True:
        end = text.find(quote, position)
        if end < 0:
            what = "text value" if quote == "'" else "quoted column name"
            raise FilterError(
                f"unterminated {what} {_excerpt(text, start)} (character {start + 1}): close it with {quote}"
            )
        if text.startswith(quote * 2, end):
            position = end + 2
        else:
            return end


def _check_tokens(tokens: list[Token], text: str) -> None:
    """Check every token against the lexicon, balance parentheses, and check function names and arity."""
    open_parens: list[int] = []  # indices of '(' not yet closed
    commas: dict[int, int] = {}  # commas directly inside the '(' at that index
    for index, token in enumerate(tokens):
        calls = index + 1 < len(tokens) and tokens[index + 1].token_type == TokenType.L_PAREN
        if calls and _is_name(token):
            _function(token.text)
        else:
            _check_lexicon(token, text)
        if token.token_type == TokenType.L_PAREN:
            open_parens.append(index)
            commas[index] = 0
            if len(open_parens) > MAX_NESTING:
                raise FilterError(
                    f"parentheses are nested more than {MAX_NESTING} deep (character {token.start + 1})"
                )
        elif token.token_type == TokenType.COMMA and open_parens:
            commas[open_parens[-1]] += 1
        elif token.token_type == TokenType.R_PAREN:
            if not open_parens:
                raise FilterError(f"')' at character {token.start + 1} has no matching '('")
            opening = open_parens.pop()
            if opening > 0 and _is_name(tokens[opening - 1]):
                count = 0 if opening == index - 1 else commas[opening] + 1
                _check_arity(tokens[opening - 1].text.lower(), count)
    if open_parens:
        raise FilterError(f"'(' at character {tokens[open_parens[-1]].start + 1} is never closed")


def _is_name(token: Token) -> bool:
    """A token that reads as a name: a name token, or a keyword that is not part of the grammar."""
    kind = token.token_type
    return kind in _NAME_TOKENS or (
        kind not in _SPELLINGS and kind not in _VALUE_TOKENS and token.text.isidentifier()
    )


def _check_lexicon(token: Token, text: str) -> None:
    """Refuse a token outside the lexicon, quoting it as the user wrote it."""
    kind = token.token_type
    if kind in _NAME_TOKENS or kind in _VALUE_TOKENS or token.text.lower() in _SPELLINGS.get(kind, ()):
        return
    written = text[token.start : token.end + 1]
    hint = _TOKEN_HINTS.get(kind, "see the filter help for what a filter may contain")
    raise FilterError(f"{written!r} at character {token.start + 1} is not allowed in a filter; {hint}")


def _function(name: str) -> _Function:
    spec = FUNCTIONS.get(name.lower())
    if spec is None:
        raise FilterError(f"function {name!r} is not allowed; allowed functions: {', '.join(FUNCTIONS)}")
    return spec


def _check_arity(name: str, count: int) -> None:
    spec = _function(name)
    if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
        raise FilterError(f"{name} takes {_arity(spec)}, got {count}: use {spec.signature}")


def _arity(spec: _Function) -> str:
    if spec.max_args is None:
        return f"at least {spec.min_args} argument{'s' * (spec.min_args > 1)}"
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument{'s' * (spec.min_args > 1)}"
    return f"{spec.min_args} to {spec.max_args} arguments"


def _parse(tokens: list[Token], text: str) -> exp.Expr:
    """One condition from the tokens, or FilterError; sqlglot's own exceptions never escape."""
    try:
        trees = _DUCKDB.parser().parse_into(exp.Condition, tokens, text)
    except ParseError as err:
        raise FilterError(_parse_message(err)) from err
    except RecursionError as err:
        raise FilterError("the filter is nested too deeply; simplify it") from err
    except Exception as err:  # any other sqlglot failure is still the text's fault
        raise FilterError(f"could not parse the filter: {_first_line(err)}") from err
    # Semicolons never get this far, so sqlglot returns one tree; None would mean it found no condition.
    tree = trees[0] if trees else None
    if tree is None:
        raise FilterError("the filter holds no condition")
    return tree


def _parse_message(err: ParseError) -> str:
    """A person's reading of sqlglot's parse error: what went wrong, near which part of the text."""
    if not err.errors:
        return f"could not parse the filter: {_first_line(err)}"
    info = err.errors[0]
    highlight = info.get("highlight") or ""
    near = ((info.get("start_context") or "") + highlight)[-40:].strip()
    description = info.get("description") or ""
    if description.startswith("Required keyword"):
        return f"the filter is incomplete near {near!r}"
    if description.startswith("Expecting "):
        return f"expected {description.removeprefix('Expecting ')} near {near!r}"
    return f"unexpected {highlight!r} near {near!r}"


def _check_depth(tree: exp.Expr) -> None:
    """Refuse trees deeper than MAX_DEPTH, without recursion, before anything walks them recursively."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FilterError(
                f"the filter is nested too deeply (more than {MAX_DEPTH} levels); "
                "for many alternatives use: column in (a, b, ...)"
            )
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def _sql(node: exp.Expr, params: list) -> str:
    """DuckDB text for an allowed node, appending the values it binds to ``params``."""
    kind = type(node)
    if kind in _BINARY:
        _expect_args(node, {"this", "expression"})
        left, right = _sql(node.this, params), _sql(node.expression, params)
        return f"({left} {_BINARY[kind]} {right})"
    if kind is exp.Not:
        _expect_args(node, {"this"})
        return f"(NOT {_sql(node.this, params)})"
    if kind is exp.Neg:
        _expect_args(node, {"this"})
        return f"(- {_sql(node.this, params)})"
    if kind is exp.Paren:
        _expect_args(node, {"this"})
        return _sql(node.this, params)
    if kind is exp.Between:
        _expect_args(node, {"this", "low", "high"})
        value, low = _sql(node.this, params), _sql(node.args["low"], params)
        return f"({value} BETWEEN {low} AND {_sql(node.args['high'], params)})"
    if kind is exp.In:
        if not node.expressions or _set_args(node) != {"this", "expressions"}:
            example = "corruption in ('fog', 'frost')"
            raise FilterError(f"write IN with a list of values, e.g. {example}: {_fragment(node)}")
        value = _sql(node.this, params)
        return f"({value} IN ({', '.join(_sql(item, params) for item in node.expressions)}))"
    if kind is exp.Is:
        if type(node.expression) is not exp.Null or _set_args(node) != {"this", "expression"}:
            raise FilterError(
                f"IS is only allowed as IS NULL or IS NOT NULL (write correct = true): {_fragment(node)}"
            )
        return f"({_sql(node.this, params)} IS NULL)"
    if kind is exp.Literal:
        _expect_args(node, {"this", "is_string"})
        params.append(node.this if node.is_string else _number(node.this))
        return "?"
    if kind is exp.Boolean:
        _expect_args(node, {"this"})
        params.append(bool(node.this))
        return "?"
    if kind is exp.Null:
        _expect_args(node, set())
        return "NULL"
    if kind is exp.Column:
        return _column(node)
    if kind in _FUNCTION_NAMES:
        return _function_call(node, params)
    raise FilterError(f"{_fragment(node)!r} is not allowed in a filter")


def _set_args(node: exp.Expr) -> set[str]:
    """Names of the node's arguments that hold something (sqlglot leaves unset flags None, False or [])."""
    return {
        key for key, value in node.args.items() if value is not None and value is not False and value != []
    }


def _expect_args(node: exp.Expr, allowed: set[str]) -> None:
    """Refuse a node carrying any argument we did not plan for (e.g. BETWEEN SYMMETRIC, table.column)."""
    if not _set_args(node) <= allowed:
        raise FilterError(f"{_fragment(node)!r} is not allowed in a filter")


def _column(node: exp.Column) -> str:
    identifier = node.this
    if type(identifier) is not exp.Identifier or _set_args(node) != {"this"}:
        raise FilterError(f"{_fragment(node)!r} is not allowed in a filter; name a column on its own")
    _expect_args(identifier, {"this", "quoted"})
    name = identifier.this
    canonical = DEPRECATED_COLUMNS.get(name.lower(), name.lower())
    if canonical not in FILTER_COLUMNS:
        raise FilterError(_unknown_column_message(name, quoted=bool(identifier.args.get("quoted"))))
    return '"' + canonical.replace('"', '""') + '"'


def _unknown_column_message(name: str, quoted: bool) -> str:
    message = f"unknown column {name!r}"
    match = difflib.get_close_matches(name.lower(), FILTER_COLUMNS, n=1, cutoff=0.6)
    if match:
        message += f" (did you mean {match[0]!r}?)"
    else:
        message += f"; columns: {', '.join(FILTER_COLUMNS)}"
    if quoted:
        message += f"; text values go in single quotes: '{name}'"
    return message


def _function_call(node: exp.Func, params: list) -> str:
    name = _FUNCTION_NAMES[type(node)]
    spec = FUNCTIONS[name]
    constant_keys = {key for key, _ in spec.constants}
    _expect_args(node, set(spec.arg_keys) | spec.flags | constant_keys)
    for key, value in spec.constants:
        constant = node.args.get(key)
        if type(constant) is not exp.Literal or constant.is_string or constant.this != value:
            raise FilterError(f"{_fragment(node)!r} is not allowed in a filter; use {spec.signature}")
    args = list(_arguments(node, spec.arg_keys))
    _check_arity(name, len(args))
    return f"{name}({', '.join(_sql(arg, params) for arg in args)})"


def _arguments(node: exp.Func, keys: tuple[str, ...]) -> Iterator[exp.Expr]:
    for key in keys:
        value = node.args.get(key)
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value


def _number(text: str) -> int | float:
    """The value of a number literal; integers outside 64 bits become floats, which DuckDB can bind."""
    try:
        value = int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError as err:
            raise FilterError(f"{text!r} is not a number") from err
    return value if _INT64_MIN <= value <= _INT64_MAX else float(value)


def _fragment(node: exp.Expr) -> str:
    """The node as text, shortened, for an error message (sqlglot's generator is used only here)."""
    try:
        text = node.sql(dialect="duckdb")
    except Exception:  # the message must not fail because sqlglot cannot print an odd node
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _excerpt(text: str, position: int) -> str:
    """A short quoted piece of the text starting at ``position``."""
    piece = text[position : position + 20]
    return repr(piece + ("..." if position + 20 < len(text) else ""))


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _help() -> str:
    width = max(len(name) for name in FILTER_COLUMNS)
    columns = "\n".join(f"  {name:<{width}}  {meaning}" for name, meaning in FILTER_COLUMNS.items())
    functions = textwrap.fill(
        ", ".join(spec.signature for spec in FUNCTIONS.values()), width=100, subsequent_indent=" " * 11
    )
    examples = "\n".join(f"  {example}" for example in FILTER_EXAMPLES)
    reference = textwrap.fill(
        "Every row carries its model's reference (the model it is compared with: its base, or the chosen "
        "reference) on the same sample and setting: "
        + ", ".join(name for name in FILTER_COLUMNS if name.startswith("reference_"))
        + ". Samples the 90 % model gets wrong under fog at severity 5 that its reference gets right:",
        width=100,
    )
    deprecated = textwrap.fill(
        "Deprecated: " + ", ".join(f"{old} (now {new})" for old, new in DEPRECATED_COLUMNS.items())
        + " still work for this release, with the same answers; use the new names.", width=100,
    )
    return f"""\
A filter is one condition on the columns below, written like a SQL WHERE clause.

Combine:   and, or, not, parentheses
Compare:   =  (or ==)   <>  (or !=)   <   <=   >   >=
           x [not] between a and b     x [not] in (a, b, ...)     x is [not] null
Compute:   +  -  *  /  %   (/ divides exactly: severity / 2 is 1.5 for severity 3)
Functions: {functions}
Values:    numbers (3, -0.5, 1e-3), text in single quotes ('fog'; write '' for a quote inside),
           true, false, null. Keywords and column names may be written in any case.
Limits:    at most {MAX_LENGTH:,} characters and {MAX_NESTING} levels of parentheses; no comments.

Columns:
{columns}

{reference}
  {REFERENCE_EXAMPLE}

{deprecated}

Examples:
{examples}
"""


FILTER_HELP: str = _help()
