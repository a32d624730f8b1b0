/**
 * The ONNX messages bnlab writes, from ONNX's onnx/onnx.proto, encoded and decoded by protobufjs's
 * reflection (browser-safe, but protobufjs compiles its encoders with `Function`: a page whose
 * Content-Security-Policy forbids 'unsafe-eval' gets an error saying so). ModelProto is a .onnx file's message.
 */
import protobuf from 'protobufjs';

/**
 * A subset of onnx/onnx.proto as of ONNX 1.10.2 (IR version 8): the fields bnlab writes or reads,
 * their names, types and numbers copied unchanged (ONNX does not renumber fields), the enums whole.
 * Proto2, as the original: repeated scalars without [packed = true] are written unpacked.
 */
const ONNX_PROTO = `
syntax = "proto2";

package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    SPARSE_TENSOR = 11;
    TYPE_PROTO = 13;

    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSORS = 12;
    TYPE_PROTOS = 14;
  }

  optional string name = 1;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  repeated int64 ints = 8;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional GraphProto graph = 7;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}

message TensorProto {
  enum DataType {
    UNDEFINED = 0;
    FLOAT = 1;
    UINT8 = 2;
    INT8 = 3;
    UINT16 = 4;
    INT16 = 5;
    INT32 = 6;
    INT64 = 7;
    STRING = 8;
    BOOL = 9;
    FLOAT16 = 10;
    DOUBLE = 11;
    UINT32 = 12;
    UINT64 = 13;
    COMPLEX64 = 14;
    COMPLEX128 = 15;
    BFLOAT16 = 16;
  }

  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional string name = 8;
  optional bytes raw_data = 9;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    };
  };
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }

  oneof value {
    Tensor tensor_type = 1;
  }
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

// The messages as plain objects, with protobufjs's camel-cased field names. int64 fields are numbers:
// bnlab's values (dimensions, attributes, versions) are far below 2^53.
export interface ModelProto {
  irVersion?: number;
  opsetImport?: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  graph?: GraphProto;
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: number;
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  attribute?: AttributeProto[];
}

export interface AttributeProto {
  name?: string;
  type?: number;
  f?: number;
  i?: number;
  ints?: number[];
}

export interface TensorProto {
  dims?: number[];
  dataType?: number;
  name?: string;
  rawData?: Uint8Array;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: TensorShapeProto };
}

export interface TensorShapeProto {
  dim?: Array<{ dimValue?: number; dimParam?: string }>;
}

// Parsed on first use, not on import, so that code that never exports ONNX does not pay for it.
let root: protobuf.Root | undefined;
function onnxRoot(): protobuf.Root {
  return (root ??= protobuf.parse(ONNX_PROTO).root);
}

/** A value of one of the schema's enums, e.g. onnxEnum('TensorProto.DataType', 'FLOAT') = 1. */
export function onnxEnum(name: 'TensorProto.DataType' | 'AttributeProto.AttributeType', key: string): number {
  const value = onnxRoot().lookupEnum(`onnx.${name}`).values[key];
  if (value === undefined) throw new Error(`onnx.${name} has no value ${key}`);
  return value;
}

/** The model serialized, as a .onnx file holds it. */
export function encodeModelProto(model: ModelProto): Uint8Array {
  try {
    return onnxRoot().lookupType('onnx.ModelProto').encode(model).finish();
  } catch (e) {
    if (e instanceof EvalError) {
      throw new Error(`ONNX export builds its protobuf encoder at run time, which this page's Content-Security-Policy forbids (${e.message}): allow 'unsafe-eval' on the page, or export in Node with \`bnlab export --onnx\``);
    }
    throw e;
  }
}

/** A serialized model as a plain object, int64 fields as numbers. Throws on bytes that are not a ModelProto. */
export function decodeModelProto(bytes: Uint8Array): ModelProto {
  const type = onnxRoot().lookupType('onnx.ModelProto');
  return type.toObject(type.decode(bytes), { longs: Number });
}
