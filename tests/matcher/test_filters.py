"""The one filters model: the API's limits for every caller, errors that name the field."""

import pytest
from pydantic import ValidationError

from matcher.errors import SchemaError
from matcher.filters import Filters, validate_filters


def test_singular_names_and_single_strings_are_accepted():
    assert validate_filters({"country": "DE", "qualification": ["a", "b"]}) == Filters(
        countries=("DE",), qualifications=("a", "b"))


def test_fields_not_given_come_from_the_defaults():
    defaults = Filters(provinces=("Bavaria",), max_employees=500)
    got = validate_filters({"country": "DE", "min_employees": 10}, defaults)
    assert got == Filters(countries=("DE",), provinces=("Bavaria",), min_employees=10, max_employees=500)
    assert validate_filters({"max_employees": 20}, defaults).max_employees == 20


@pytest.mark.parametrize("data, message", [
    ({"founded_after": 5}, "field 'founded_after': Input should be greater than or equal to 1000 (got 5)"),
    ({"founded_after": 3001}, "field 'founded_after'"),
    ({"min_employees": "many"}, "field 'min_employees': Input should be a valid integer (got 'many')"),
    ({"max_employees": True}, "field 'max_employees'"),
    ({"min_employees": -1}, "field 'min_employees'"),
    ({"max_employees": 10_000_001}, "field 'max_employees'"),
    ({"include_local": 1}, "field 'include_local'"),
    ({"country": [1]}, "field 'country.0'"),
    ({"province": ["x"] * 51}, "field 'province': Tuple should have at most 50 items"),
    ({"qualification": ["x"] * 21}, "field 'qualification'"),
    ({"country": "x" * 201}, "field 'country.0'"),
    ({"country": "a\x00b"}, "field 'country.0'"),
    ({"colour": "red"}, "field 'colour': Extra inputs are not permitted"),
])
def test_a_wrong_value_is_an_error_naming_the_field(data, message):
    with pytest.raises(SchemaError) as caught:
        validate_filters(data)
    assert message in str(caught.value)


def test_filters_are_hashable_and_equal_by_value():
    assert {Filters(countries=("DE",)): 1}[Filters(countries=("DE",))] == 1
    with pytest.raises(ValidationError):
        Filters().include_local = True
