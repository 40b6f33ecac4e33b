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
    rejected = IngestRejectionSerializer(many=True)
    detail = serializers.CharField(
        required=False, help_text="Why the whole request was refused, when it was."
    )
