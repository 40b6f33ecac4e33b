from rest_framework import serializers


class IngestRejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the reading in the request (0-based).")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field (camelCase), or under nonFieldErrors.",
    )


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Readings stored by this request.")
    duplicates = serializers.IntegerField(
        help_text="Valid readings already stored (same device and timestamp): not stored again."
    )
    conflicts = serializers.IntegerField(
        help_text=(
            "Of the duplicates, those whose values differ from the reading stored under that "
            "device and timestamp (or from the first of this request): the stored one is kept."
        )
    )
    rejected = IngestRejectionSerializer(
        many=True, help_text="Each invalid reading by index, with every error of it by field."
    )
    detail = serializers.CharField(
        required=False, help_text="Why the whole request was refused, when it was."
    )
