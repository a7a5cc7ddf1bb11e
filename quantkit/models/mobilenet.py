"""MobileNetV1 as a static-graph network, with PaddleSlim's `MobileNet().net(...)` face.

Parameter names follow PaddleSlim's seed model (`conv1_weights`, `conv2_1_dw_bn_scale`,
`fc7_weights`, ...) so checkpoints and skip lists written for it still apply.
"""
from __future__ import annotations

import paddle
from paddle.nn.initializer import KaimingUniform

# (name, depthwise in-channels, pointwise out-channels, stride) for scale 1.0.
_SEPARABLE_BLOCKS = tuple((f"conv{name}", depthwise, pointwise, stride)
                          for name, depthwise, pointwise, stride in (
    ("2_1", 32, 64, 1), ("2_2", 64, 128, 2), ("3_1", 128, 128, 1), ("3_2", 128, 256, 2),
    ("4_1", 256, 256, 1), ("4_2", 256, 512, 2),
    *((f"5_{index}", 512, 512, 1) for index in range(1, 6)),
    ("5_6", 512, 1024, 2), ("6", 1024, 1024, 1)))


class MobileNet:
    """MobileNetV1 (Howard et al. 2017) built into the current static program."""

    def net(self, input, class_dim: int = 1000, scale: float = 1.0):
        """Append the network to the default main program and return the logits."""
        x = _conv_bn(input, filter_size=3, num_filters=int(32 * scale), stride=2, name="conv1")
        for name, channels, out_channels, stride in _SEPARABLE_BLOCKS:
            x = _conv_bn(x, filter_size=3, num_filters=int(channels * scale), stride=stride,
                         groups=int(channels * scale), name=f"{name}_dw")
            x = _conv_bn(x, filter_size=1, num_filters=int(out_channels * scale), stride=1,
                         name=f"{name}_sep")
        x = paddle.nn.functional.adaptive_avg_pool2d(x, output_size=1)
        x = paddle.flatten(x, start_axis=1)
        return paddle.static.nn.fc(
            x, class_dim,
            weight_attr=paddle.ParamAttr(initializer=KaimingUniform(), name="fc7_weights"),
            bias_attr=paddle.ParamAttr(name="fc7_offset"))


def _conv_bn(x, filter_size: int, num_filters: int, stride: int, name: str, groups: int = 1):
    conv = paddle.static.nn.conv2d(
        x, num_filters=num_filters, filter_size=filter_size, stride=stride,
        padding=(filter_size - 1) // 2, groups=groups, act=None,
        param_attr=paddle.ParamAttr(initializer=KaimingUniform(), name=f"{name}_weights"),
        bias_attr=False)
    return paddle.static.nn.batch_norm(
        conv, act="relu",
        param_attr=paddle.ParamAttr(name=f"{name}_bn_scale"),
        bias_attr=paddle.ParamAttr(name=f"{name}_bn_offset"),
        moving_mean_name=f"{name}_bn_mean",
        moving_variance_name=f"{name}_bn_variance")
