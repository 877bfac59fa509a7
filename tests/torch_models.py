"""PyTorch definitions of the architectures torchvision lacks, for the parity tests.

Written from the papers, independently of the C code: the names follow
torchvision's conventions (conv1/bn1/layerS.I.convJ/bnJ/downsample.K/fc) and the
pre-activation nets use the layout of He et al. 2016 (fb.resnet.torch's
preresnet): the stem ends with BN-ReLU, the first unit of stage 1 has no
pre-activation of its own, the others start with BN-ReLU; a projection shortcut
reads the activated input, an identity shortcut the raw one; a final BN-ReLU
('bn_final') precedes the pooling.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)


class PadSkip(nn.Module):
    """Option-A shortcut: strided identity, channels zero-padded (akamaster's resnet.py)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride, self.lo, self.hi = stride, (cout - cin) // 2, cout - cin - (cout - cin) // 2

    def forward(self, x):
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.lo, self.hi))


class PostBlock(nn.Module):
    """Basic or bottleneck block with BN after every conv; stride on the 3x3 (v1.5) or the first 1x1 (v1)."""

    def __init__(self, cin, planes, stride, bottleneck, shortcut="B", v1=False):
        super().__init__()
        self.bottleneck = bottleneck
        out = planes * 4 if bottleneck else planes
        if bottleneck:
            self.conv1, self.bn1 = conv(cin, planes, 1, stride if v1 else 1), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = conv(planes, planes, 3, 1 if v1 else stride), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = conv(planes, out, 1), nn.BatchNorm2d(out)
        else:
            self.conv1, self.bn1 = conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.downsample = None
        self.pad = None
        if stride != 1 or cin != out:
            if shortcut == "A":
                self.pad = PadSkip(cin, out, stride)
            else:
                self.downsample = nn.Sequential(conv(cin, out, 1, stride), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        if self.bottleneck:
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
        else:
            y = self.bn2(self.conv2(y))
        sc = self.downsample(x) if self.downsample is not None else self.pad(x) if self.pad is not None else x
        return F.relu(y + sc)


class PreBlock(nn.Module):
    """Full pre-activation block: BN-ReLU-conv."""

    def __init__(self, cin, planes, stride, bottleneck, preact):
        super().__init__()
        self.bottleneck, self.preact = bottleneck, preact
        out = planes * 4 if bottleneck else planes
        if preact:
            self.bn1 = nn.BatchNorm2d(cin)
        if bottleneck:
            self.conv1 = conv(cin, planes, 1)
            self.bn2, self.conv2 = nn.BatchNorm2d(planes), conv(planes, planes, 3, stride)
            self.bn3, self.conv3 = nn.BatchNorm2d(planes), conv(planes, out, 1)
        else:
            self.conv1 = conv(cin, planes, 3, stride)
            self.bn2, self.conv2 = nn.BatchNorm2d(planes), conv(planes, planes, 3)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(conv(cin, out, 1, stride))

    def forward(self, x):
        a = F.relu(self.bn1(x)) if self.preact else x
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y)))
        if self.bottleneck:
            y = self.conv3(F.relu(self.bn3(y)))
        return y + (self.downsample(a) if self.downsample is not None else x)


class Net(nn.Module):
    """Any ResNet of the family: stem, stages of blocks, pooling, fc."""

    def __init__(self, blocks, widths, block="basic", stem="imagenet", classes=10, in_channels=3, shortcut="B",
                 v1=False):
        super().__init__()
        preact, bottleneck = block.startswith("preact"), block.endswith("bottleneck")
        self.preact, self.imagenet = preact, stem == "imagenet"
        w0 = widths[0]
        self.conv1 = nn.Conv2d(in_channels, w0, 7 if self.imagenet else 3, 2 if self.imagenet else 1,
                               3 if self.imagenet else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w0)
        cin = w0
        for s, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for i in range(n):
                stride = 2 if (i == 0 and s > 0) else 1
                if preact:
                    layers.append(PreBlock(cin, w, stride, bottleneck, not (s == 0 and i == 0)))
                else:
                    layers.append(PostBlock(cin, w, stride, bottleneck, shortcut, v1))
                cin = w * 4 if bottleneck else w
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.nstages = len(blocks)
        if preact:
            self.bn_final = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.imagenet:
            x = F.max_pool2d(x, 3, 2, 1)
        for s in range(self.nstages):
            x = getattr(self, f"layer{s + 1}")(x)
        if self.preact:
            x = F.relu(self.bn_final(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet_v1(depth, classes):
    """torchvision's bottleneck ResNet with the stride moved to the first 1x1 (the paper's / Caffe's)."""
    m = getattr(torchvision.models, f"resnet{depth}")(num_classes=classes)
    for name in ("layer2", "layer3", "layer4"):
        blk = getattr(m, name)[0]
        blk.conv1.stride, blk.conv2.stride = (2, 2), (1, 1)
    return m


def cifar(depth, shortcut, classes=10):
    n = (depth - 2) // 6
    return Net([n] * 3, [16, 32, 64], "basic", "cifar", classes, 3, shortcut)
