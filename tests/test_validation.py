"""The root-side conversion rules of mpi_qinfer.validation, one by one (serial; no MPI needed).

The rule behind them: the array the workers read holds exactly the values the
serial model would have seen, in the dtype the workers read it with
(``wire_dtype``); whatever numpy's cast would change is refused with a reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from mpi_qinfer.validation import (
    InexactCastError,
    MissingFieldError,
    NotARecordError,
    UnsendableDtypeError,
    as_expparams,
    as_modelparams,
    as_outcomes,
    as_repeat,
    wire_dtype,
)

BINOMIAL = np.dtype([("t", "f8"), ("n_meas", "u8")])


def records(dtype, **columns):
    out = np.zeros(len(next(iter(columns.values()))), dtype=dtype)
    for name, values in columns.items():
        out[name] = values
    return out


# ------------------------------------------------------------------ wire dtype
def test_wire_dtype_is_the_models_dtype_in_native_byte_order():
    big = np.dtype([("t", ">f8"), ("v", ">i4", (2,)), ("s", "S3")])
    wire = wire_dtype(big)
    assert wire.isnative
    assert wire.names == big.names
    assert [wire.fields[n][0].base.str for n in wire.names] == ["<f8" if np.little_endian else ">f8",
                                                                "<i4" if np.little_endian else ">i4", "|S3"]
    assert wire_dtype(np.dtype("f8")) == np.dtype("f8")
    assert wire_dtype(np.dtype([])) == np.dtype([])
    assert wire_dtype([("t", ">f8"), ("n_meas", "uint")]) == np.dtype([("t", "f8"), ("n_meas", "u8")])  # qinfer's lists


def test_a_dtype_holding_objects_cannot_travel():
    with pytest.raises(UnsendableDtypeError, match="Python-object"):
        wire_dtype(np.dtype([("label", object)]))
    with pytest.raises(UnsendableDtypeError):
        as_expparams(np.zeros(3), np.dtype([("label", object)]))


# ------------------------------------------------------------------ expparams
def test_an_array_already_in_wire_form_is_returned_itself():
    expparams = records(BINOMIAL, t=[1.0, 2.0], n_meas=[3, 4])
    assert as_expparams(expparams, BINOMIAL) is expparams
    times = np.linspace(0, 1, 5)
    assert as_expparams(times, np.dtype(float)) is times


def test_int64_values_for_a_uint64_field_are_cast_as_numpy_assigns_them():
    given = records([("t", "f8"), ("n_meas", "i8")], t=[0.5, 1.5], n_meas=[10, 20])
    out = as_expparams(given, BINOMIAL)
    assert out.dtype == BINOMIAL and out.flags.c_contiguous
    assert out["n_meas"].tolist() == [10, 20] and out["t"].tolist() == [0.5, 1.5]


def test_fields_are_taken_by_name_in_any_order_and_extra_fields_left_out():
    given = records([("note", "f8"), ("n_meas", "i4"), ("t", "f4")], note=[9.0, 9.0], n_meas=[1, 2], t=[0.25, 0.5])
    out = as_expparams(given, BINOMIAL)
    assert out.dtype == BINOMIAL
    assert out["t"].tolist() == [0.25, 0.5] and out["n_meas"].tolist() == [1, 2]


def test_a_value_the_model_dtype_cannot_hold_is_refused_with_the_value_and_why():
    negative = records([("t", "f8"), ("n_meas", "i8")], t=[1.0, 1.0], n_meas=[3, -1])
    with pytest.raises(InexactCastError, match=r"'n_meas' holds -1.*uint64.*serial model"):
        as_expparams(negative, BINOMIAL)
    with pytest.raises(InexactCastError, match="2.5"):
        as_expparams(np.array([1.0, 2.5]), np.dtype("i8"))
    with pytest.raises(InexactCastError):  # rounding into a narrower float
        as_expparams(np.array([0.1]), np.dtype("f4"))
    with pytest.raises(InexactCastError):  # a float64 cannot hold 2**53 + 1 (seen in the round trip, not the promotion)
        as_expparams(np.array([2**53 + 1]), np.dtype("f8"))
    with pytest.raises(InexactCastError):  # the imaginary part would be dropped
        as_expparams(np.array([1 + 1j]), np.dtype("f8"))


def test_record_fields_are_checked_exact_whichever_way_the_cast_is_made():
    big_int = records([("t", "i8"), ("n_meas", "i8")], t=[1, 2**53 + 1], n_meas=[1, 1])
    with pytest.raises(InexactCastError, match="'t' holds 9007199254740993"):
        as_expparams(big_int, BINOMIAL)  # a "safe" cast for numpy, not an exact one
    small = np.dtype([("t", "f8"), ("n_meas", "u1")])
    with pytest.raises(InexactCastError, match="'n_meas' holds 300"):
        as_expparams(records([("t", "f8"), ("n_meas", "i8")], t=[1.0], n_meas=[300]), small)
    fits = as_expparams(records([("t", ">f4"), ("n_meas", ">i2")], t=[0.5], n_meas=[255]), small)
    assert fits.dtype == small and fits["n_meas"].tolist() == [255] and fits["t"].tolist() == [0.5]


def test_exact_casts_of_plain_values_are_accepted():
    assert as_expparams(np.arange(4), np.dtype("f8")).tolist() == [0.0, 1.0, 2.0, 3.0]
    out = as_expparams(np.array([1.0, np.nan, -0.0]), np.dtype("f4"))
    assert out.dtype == np.float32 and np.isnan(out[1]) and np.signbit(out[2])
    assert as_expparams(np.ones(2, dtype=complex), np.dtype("f8")).tolist() == [1.0, 1.0]
    assert as_expparams(np.array([True, False]), np.dtype("i2")).tolist() == [1, 0]
    assert as_expparams([0.5, 1.5], np.dtype("f8")).tolist() == [0.5, 1.5]  # a list, as numpy.asarray reads it


def test_big_endian_data_arrive_native_with_the_same_values():
    big = np.dtype([("t", ">f8"), ("phase", ">i4")])
    given = records(big, t=np.linspace(0, 20, 400), phase=np.arange(400) % 7)
    out = as_expparams(given, big)
    assert out.dtype == wire_dtype(big) and out.dtype.isnative
    assert np.array_equal(out["t"], given["t"]) and np.array_equal(out["phase"], given["phase"])
    # The bytes are what a worker reading with the wire dtype needs.
    assert np.array_equal(np.frombuffer(out.tobytes(), dtype=wire_dtype(big))["t"], given["t"])
    little = given.astype([("t", "<f8"), ("phase", "<i4")])
    assert np.array_equal(as_expparams(little, big)["t"], given["t"])


def test_a_big_endian_plain_dtype_travels_native():
    given = np.linspace(0, 1, 5).astype(">f8")
    out = as_expparams(given, np.dtype(">f8"))
    assert out.dtype == np.dtype("f8") and out.dtype.isnative and np.array_equal(out, given)


def test_a_scalar_field_fills_each_experiments_sub_array_as_numpy_casts_it():
    given = np.array([(1,), (2,), (3,)], dtype=[("v", "i8")])
    want = np.dtype([("v", "f8", (3,))])
    out = as_expparams(given, want)
    assert out["v"].tolist() == [[1.0] * 3, [2.0] * 3, [3.0] * 3]
    assert np.array_equal(out["v"], given.astype(want)["v"])  # numpy's own cast, not field assignment


def test_a_sub_array_numpy_would_pad_or_cut_is_refused():
    want = np.dtype([("v", "f8", (3,))])
    with pytest.raises(InexactCastError, match=r"\(2,\)"):
        as_expparams(np.zeros(2, dtype=[("v", "f8", (2,))]), want)
    with pytest.raises(InexactCastError):
        as_expparams(np.zeros(2, dtype=[("v", "f8", (4,))]), want)
    with pytest.raises(InexactCastError):
        as_expparams(np.zeros(2, dtype=[("v", "f8", (3,))]), np.dtype([("v", "f8")]))
    broadcast = as_expparams(np.array([([7],)], dtype=[("v", "i8", (1,))]), want)
    assert broadcast["v"].tolist() == [[7.0, 7.0, 7.0]]


def test_a_model_without_experiment_parameters_takes_any_1d_array():
    empty = np.dtype([])
    for given in (np.ones(10, dtype=int), np.zeros(10, dtype=empty), np.linspace(0, 1, 10),
                  np.zeros(10, dtype=[("anything", "f8")])):
        out = as_expparams(given, empty)
        assert out.dtype == empty and out.shape == (10,) and out.itemsize == 0


def test_a_missing_field_is_a_value_error_like_numpys():
    given = np.zeros(3, dtype=[("t", "f8")])
    with pytest.raises(MissingFieldError, match=r"missing \['n_meas'\]"):
        as_expparams(given, BINOMIAL)
    with pytest.raises(ValueError) as numpy_error:
        given["n_meas"]
    with pytest.raises(type(numpy_error.value)):
        as_expparams(given, BINOMIAL)
    with pytest.raises(TypeError):  # still a TypeError, as before
        as_expparams(given, BINOMIAL)


def test_a_plain_array_for_a_record_model_is_an_index_error_like_numpys():
    with pytest.raises(IndexError) as numpy_error:
        np.zeros(3)["t"]
    with pytest.raises(NotARecordError, match="record array"):
        as_expparams(np.zeros(3), BINOMIAL)
    with pytest.raises(type(numpy_error.value)):
        as_expparams(np.zeros(3), BINOMIAL)


def test_other_refusals_name_the_argument():
    with pytest.raises(ValueError, match="expparams.*1-d"):
        as_expparams(np.zeros((2, 2)), np.dtype("f8"))
    with pytest.raises(TypeError, match="expparams.*record"):
        as_expparams(np.zeros(2, dtype=[("t", "f8")]), np.dtype("f8"))
    with pytest.raises(TypeError, match="field 't'"):  # a string where the model wants a number
        as_expparams(np.zeros(2, dtype=[("t", "U3"), ("n_meas", "i8")]), BINOMIAL)
    with pytest.raises(TypeError, match="sub-array dtype"):
        as_expparams(np.zeros((2, 3)), np.dtype(("f8", (3,))))


def test_nested_records_must_have_the_models_layout():
    inner = np.dtype([("a", "f8"), ("b", "i4")])
    want = np.dtype([("inner", inner), ("t", "f8")])
    given = np.zeros(2, dtype=[("t", "f8"), ("inner", inner.newbyteorder(">"))])
    given["inner"]["a"] = [1.5, 2.5]
    assert as_expparams(given, want)["inner"]["a"].tolist() == [1.5, 2.5]
    swapped = np.zeros(2, dtype=[("t", "f8"), ("inner", [("b", "i4"), ("a", "f8")])])
    with pytest.raises(TypeError, match="nested record"):
        as_expparams(swapped, want)


def test_object_values_become_numbers_when_exact():
    out = as_expparams(np.array([1.0, 2.0], dtype=object), np.dtype("f8"))
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ outcomes
def test_integer_outcomes_are_returned_themselves():
    outcomes = np.arange(3)
    assert as_outcomes(outcomes) is outcomes


def test_record_outcomes_keep_their_dtype():
    counts = np.dtype([("k", np.int64, (6,))])
    outcomes = np.zeros(4, dtype=counts)
    outcomes["k"][:, 0] = np.arange(4)
    out = as_outcomes(outcomes)
    assert out.dtype == counts and np.array_equal(out["k"], outcomes["k"])
    one = as_outcomes(outcomes[2])  # a single record, numpy.void: one element
    assert one.shape == (1,) and one.dtype == counts and one["k"][0, 0] == 2


def test_outcomes_of_other_dtypes_keep_values_and_become_native():
    assert as_outcomes(7).tolist() == [7]
    assert as_outcomes(np.array([1, 0], dtype=">i4")).dtype == np.dtype("i4")
    assert as_outcomes(np.array([True, False])).dtype == np.bool_
    assert as_outcomes(np.array([0.5, 1.5], dtype=np.float32)).dtype == np.float32
    big_records = np.zeros(2, dtype=[("k", ">i8", (2,))])
    assert as_outcomes(big_records).dtype.isnative
    assert as_outcomes(np.arange(6)[::2]).flags.c_contiguous


def test_outcomes_that_cannot_travel_or_are_not_1d_are_refused():
    with pytest.raises(UnsendableDtypeError, match="outcomes"):
        as_outcomes(np.array([0, 1], dtype=object))
    with pytest.raises(ValueError, match="outcomes"):
        as_outcomes(np.zeros((2, 2), dtype=int))


# ------------------------------------------------------------------ modelparams
def test_float64_modelparams_are_returned_themselves():
    modelparams = np.ones((4, 2))
    assert as_modelparams(modelparams, 2) is modelparams


def test_modelparams_keep_their_numeric_dtype():
    assert as_modelparams(np.ones((3, 1), dtype=np.float32), 1).dtype == np.float32
    assert as_modelparams(np.ones((3, 1), dtype=complex), 1).dtype == np.complex128
    assert as_modelparams(np.ones((3, 1), dtype=np.longdouble), 1).dtype == np.longdouble
    assert as_modelparams(np.ones((3, 1), dtype=">f8"), 1).dtype.isnative
    assert as_modelparams(np.ones((2, 6))[:, ::2], 3).flags.c_contiguous


def test_modelparams_of_the_wrong_shape_or_kind_are_refused():
    with pytest.raises(ValueError, match=r"\(n_models, 2\)"):
        as_modelparams(np.ones((3, 1)), 2)
    with pytest.raises(ValueError, match="modelparams"):
        as_modelparams(np.ones(3), 1)
    with pytest.raises(UnsendableDtypeError, match="modelparams"):
        as_modelparams(np.ones((3, 1), dtype=object), 1)
    with pytest.raises(TypeError, match="modelparams"):
        as_modelparams(np.array([["a"]]), 1)
    with pytest.raises(TypeError, match="modelparams"):
        as_modelparams(np.zeros((2, 1), dtype=[("x", "f8")]), 1)


# ------------------------------------------------------------------ repeat
@pytest.mark.parametrize("repeat", [0, -1, 1.0, True, "2"])
def test_repeat_must_be_a_positive_integer(repeat):
    with pytest.raises(ValueError, match="repeat"):
        as_repeat(repeat)


def test_repeat_accepts_numpy_integers():
    assert as_repeat(np.int32(3)) == 3 and type(as_repeat(np.int64(2))) is int
