"""A buf `local` plugin that runs grpcio-tools' Python generators (messages, .pyi stubs, gRPC stubs).

buf hands a plugin a CodeGeneratorRequest on stdin; grpcio-tools only offers a protoc front end
(`grpc_tools.protoc`, protoc with the grpc_python generator linked in), and buf's `protoc_builtin`
cannot name `grpc_python`. So this wrapper writes the request's descriptors to a descriptor set,
runs grpc_tools.protoc on it with the three outputs, and returns the files as the response: buf
still chooses the inputs (proto/ without the vendored google/rpc, which googleapis-common-protos
provides) and the output directory, as for every other language (buf.gen.clients.yaml).
"""

import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    descriptors = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_set = os.path.join(tmp, "input.binpb")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        with open(descriptor_set, "wb") as f:
            f.write(descriptors.SerializeToString())
        args = [
            "grpc_tools.protoc",
            f"--descriptor_set_in={descriptor_set}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ]
        code = protoc.main(args)
        if code != 0:
            response.error = f"grpc_tools.protoc exited with {code} (its message is on stderr)"
            return response
        for root, _dirs, files in os.walk(out):
            for name in sorted(files):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    response.file.add(name=os.path.relpath(path, out), content=f.read())
    return response


if __name__ == "__main__":
    req = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(req).SerializeToString())
