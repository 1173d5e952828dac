package gguf

import (
	"fmt"
	"math"
)

// ValueType is the type tag of a metadata value, as GGUF numbers it.
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	TypeUint8:   "uint8",
	TypeInt8:    "int8",
	TypeUint16:  "uint16",
	TypeInt16:   "int16",
	TypeUint32:  "uint32",
	TypeInt32:   "int32",
	TypeFloat32: "float32",
	TypeBool:    "bool",
	TypeString:  "string",
	TypeArray:   "array",
	TypeUint64:  "uint64",
	TypeInt64:   "int64",
	TypeFloat64: "float64",
}

// String returns the type's name, e.g. "uint32".
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

func (t ValueType) valid() bool { return int(t) < len(valueTypeNames) }

// minEncodedSize is the fewest bytes one value of type t takes in a file. It
// bounds array counts against the bytes left before anything is allocated.
func (t ValueType) minEncodedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64, TypeString:
		return 8 // a string is at least its 8-byte length
	case TypeArray:
		return 4 + 8 // element type and count
	}
	return 0
}

// Value is one metadata value: a scalar, a string, or an array of them
// (arrays may nest).
//
// Interface returns it as the matching Go type: uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64, float64; an array as a
// slice of its element type ([]uint32, []string, ...), and an array of arrays
// as []Value.
type Value struct {
	typ  ValueType
	elem ValueType
	x    any
}

// NewValue wraps a Go value of one of the types listed on Value. It returns an
// error for any other type, and for an array of arrays whose elements are not
// all arrays.
func NewValue(x any) (Value, error) {
	switch x := x.(type) {
	case uint8:
		return Value{typ: TypeUint8, x: x}, nil
	case int8:
		return Value{typ: TypeInt8, x: x}, nil
	case uint16:
		return Value{typ: TypeUint16, x: x}, nil
	case int16:
		return Value{typ: TypeInt16, x: x}, nil
	case uint32:
		return Value{typ: TypeUint32, x: x}, nil
	case int32:
		return Value{typ: TypeInt32, x: x}, nil
	case float32:
		return Value{typ: TypeFloat32, x: x}, nil
	case bool:
		return Value{typ: TypeBool, x: x}, nil
	case string:
		return Value{typ: TypeString, x: x}, nil
	case uint64:
		return Value{typ: TypeUint64, x: x}, nil
	case int64:
		return Value{typ: TypeInt64, x: x}, nil
	case float64:
		return Value{typ: TypeFloat64, x: x}, nil
	case []uint8:
		return Value{typ: TypeArray, elem: TypeUint8, x: x}, nil
	case []int8:
		return Value{typ: TypeArray, elem: TypeInt8, x: x}, nil
	case []uint16:
		return Value{typ: TypeArray, elem: TypeUint16, x: x}, nil
	case []int16:
		return Value{typ: TypeArray, elem: TypeInt16, x: x}, nil
	case []uint32:
		return Value{typ: TypeArray, elem: TypeUint32, x: x}, nil
	case []int32:
		return Value{typ: TypeArray, elem: TypeInt32, x: x}, nil
	case []float32:
		return Value{typ: TypeArray, elem: TypeFloat32, x: x}, nil
	case []bool:
		return Value{typ: TypeArray, elem: TypeBool, x: x}, nil
	case []string:
		return Value{typ: TypeArray, elem: TypeString, x: x}, nil
	case []uint64:
		return Value{typ: TypeArray, elem: TypeUint64, x: x}, nil
	case []int64:
		return Value{typ: TypeArray, elem: TypeInt64, x: x}, nil
	case []float64:
		return Value{typ: TypeArray, elem: TypeFloat64, x: x}, nil
	case []Value:
		for i, v := range x {
			if v.typ != TypeArray {
				return Value{}, fmt.Errorf("gguf: array of arrays: element %d is a %v", i, v.typ)
			}
		}
		return Value{typ: TypeArray, elem: TypeArray, x: x}, nil
	}
	return Value{}, fmt.Errorf("gguf: no metadata type for Go type %T", x)
}

// Type returns the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// ElemType returns the element type of an array (TypeArray for an array of
// arrays); it is meaningless for scalars.
func (v Value) ElemType() ValueType { return v.elem }

// Interface returns the value as a Go value (see Value).
func (v Value) Interface() any { return v.x }

// Len returns the number of elements of an array, or 0 for a scalar.
func (v Value) Len() int {
	if v.typ != TypeArray {
		return 0
	}
	switch x := v.x.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	case []Value:
		return len(x)
	}
	return 0
}

// typeDescription names the type for error messages, e.g. "array of string".
func (v Value) typeDescription() string {
	if v.typ == TypeArray {
		return "array of " + v.elem.String()
	}
	return v.typ.String()
}

// asInt64 converts an integer scalar to int64; ok is false for non-integers
// and for uint64 values above MaxInt64.
func (v Value) asInt64() (n int64, ok bool) {
	switch x := v.x.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

func (v Value) isInteger() bool {
	switch v.typ {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}
