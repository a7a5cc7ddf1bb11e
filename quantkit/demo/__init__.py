"""The PaddleSlim PTQ tutorial (MobileNetV1 on MNIST) as one command: `quantkit demo`."""
