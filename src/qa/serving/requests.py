"""The /ask request and how a failed one is described: one definition for the HTTP API and the MCP tools,
so that both accept the same questions and refuse the rest with the same words."""

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator

from qa.service import (
    MAX_K,
    MAX_QUESTION_CHARS,
    QUESTION_PATTERN,
    InvalidRequest,
    reject_lone_surrogates,
    validate_question,
)

MAX_DOCUMENT_FILTERS = 100
# Documented in the schema, enforced by validate_question (whose messages say what to fix).
# The pattern stays in the schema for tools that read it (what the schema accepts, the server accepts);
# people read the rule in the description (ReDoc hides patterns: api_docs.py).
QUESTION_SCHEMA = {"minLength": 1, "maxLength": MAX_QUESTION_CHARS, "pattern": QUESTION_PATTERN}
QUESTION_RULE = (f"1 to {MAX_QUESTION_CHARS:,} characters, at least one of them not blank: a question of spaces, "
                 "tabs or line breaks alone is refused.")


def whole_number(value: object) -> int:
    """JSON Schema's "integer": 5 and 5.0 pass; "5", 5.5 and true are refused rather than coerced."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"must be a whole number, got {value}")
    return int(value)


class AskRequest(BaseModel):
    question: str = Field(
        description=f"The question: {QUESTION_RULE}", json_schema_extra=QUESTION_SCHEMA,
        examples=["What does Article II ask of the allies?"],
    )
    k: Annotated[int, BeforeValidator(whole_number)] = Field(
        5, ge=1, le=MAX_K, description="How many passages to return."
    )
    documents: list[str] | None = Field(
        None, max_length=MAX_DOCUMENT_FILTERS, description="Only search these doc_ids; null searches all."
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        try:
            return validate_question(value)
        except InvalidRequest as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from exc

    @field_validator("documents")
    @classmethod
    def _documents(cls, value: list[str] | None) -> list[str] | None:
        for doc_id in value or []:
            try:
                reject_lone_surrogates("documents", doc_id)
            except InvalidRequest as exc:
                raise ValueError(str(exc).split(": ", 1)[1]) from exc
        return value


def describe_invalid(errors: Sequence[Any]) -> str:
    """One line naming each field that failed and why, in the words a caller can act on."""
    problems = []
    for err in errors:
        loc = err.get("loc", ())
        where = ".".join(str(p) for p in loc if p not in ("body", "query", "path"))
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "")
            problems.append(f"body: malformed JSON at character {loc[-1]} ({reason}); send a JSON object")
        elif not where and err.get("type") in ("model_attributes_type", "dict_type", "missing"):
            problems.append('body: send a JSON object such as {"question": "..."} with '
                            "Content-Type: application/json")
        else:
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where or 'body'}: {message}")
    return "; ".join(problems)


def ask_request(question: object, k: object = 5, documents: object = None,
                question_field: str = "question") -> AskRequest:
    """The request the API would accept, or InvalidRequest whose message is the API's 422 `detail`
    (with the question named `question_field`, for a caller whose parameter has another name)."""
    try:
        return AskRequest(question=question, k=k, documents=documents)
    except ValidationError as exc:
        problems = describe_invalid(exc.errors()).split("; ")
        detail = "; ".join(question_field + p.removeprefix("question") if p.startswith("question: ") else p
                           for p in problems)
        field, _, message = detail.partition(": ")
        raise InvalidRequest(field, message) from exc
